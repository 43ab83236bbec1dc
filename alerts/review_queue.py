"""The review queue in Redis (CONTRACT section 3): enqueue alerts at most once, cap the
stream without losing what reviewers have not acknowledged, and measure it.

Key layout (``prefix`` = ``settings.redis_key_prefix``, default ``settleguard:``):

* ``settings.review_stream`` (default ``settleguard:review``): a Stream, one entry per
  alert with the single field ``alert`` = the alert JSON; consumer group
  ``settings.review_group`` (default ``reviewers``) created here.
* ``<prefix>alert:<alert_id>``: a Hash with ``alert`` (the alert JSON) and ``entry`` (its
  stream entry id), expiring after ``settings.review_retention_days``. Its existence is
  the "already enqueued" mark; a reviewer's decision adds ``verdict`` and
  ``verdict_entry`` (see ``alerts/review_desk.py``).

Enqueueing and trimming are Lua scripts, so each runs as one atomic step: a crash or a
second worker between the check and the write cannot enqueue an alert twice, and a
reviewer cannot read an entry while it is being trimmed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from config.settings import Settings

#: KEYS: stream, alert hash. ARGV: alert JSON, expiry in seconds.
#: Returns the new entry id, or false when the alert was enqueued before.
ENQUEUE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local entry = redis.call('XADD', KEYS[1], '*', 'alert', ARGV[1])
redis.call('HSET', KEYS[2], 'alert', ARGV[1], 'entry', entry)
redis.call('EXPIRE', KEYS[2], ARGV[2])
return entry
"""

#: KEYS: stream. ARGV: the cap, the most entries to remove in one call.
#: Removes the oldest entries beyond the cap, but only those every group has delivered
#: (id <= last-delivered-id) and acknowledged (id < its oldest pending id); a stream
#: without groups is never trimmed (nobody has acknowledged anything). Returns how many.
TRIM = """
local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return {tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))}
end
local function before(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[1])
if excess <= 0 then return 0 end
excess = math.min(excess, tonumber(ARGV[2]))
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess + 1)
local bound = parse(oldest[#oldest][1])  -- the cap keeps this entry and newer ones
for _, flat in ipairs(groups) do
  local group = {}
  for i = 1, #flat, 2 do group[flat[i]] = flat[i + 1] end
  local delivered = parse(group['last-delivered-id'])
  local undelivered = {delivered[1], delivered[2] + 1}
  if before(undelivered, bound) then bound = undelivered end
  if group['pending'] > 0 then
    local pending = parse(redis.call('XPENDING', KEYS[1], group['name'])[2])
    if before(pending, bound) then bound = pending end
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', bound[1] .. '-' .. bound[2])
"""

TRIM_BATCH = 10_000
"""Most entries one trim removes (keeps each script run short; the next flush goes on)."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The stream's length and the entries its group has not acknowledged."""

    depth: int
    unacknowledged: int


def alert_key(prefix: str, alert_id: str) -> str:
    """The Redis key of an enqueued alert's hash."""
    return f"{prefix}alert:{alert_id}"


def redis_client(settings: Settings) -> Redis:
    """A client for ``settings.redis_url`` that fails fast when Redis is down (the sink
    runner retries with backoff; the CLI says what to start)."""
    return Redis.from_url(
        settings.redis_url, socket_connect_timeout=3, socket_timeout=10, decode_responses=True
    )


class ReviewQueue:
    """The review stream, its consumer group and the per-alert hashes."""

    def __init__(self, settings: Settings, client: Redis) -> None:
        self.client = client
        self.stream, self.group = settings.review_stream, settings.review_group
        self.prefix = settings.redis_key_prefix
        self.max_entries = settings.review_max_entries
        self.expire_seconds = max(1, round(settings.review_retention_days * 86400))
        self._enqueue = client.register_script(ENQUEUE)
        self._trim = client.register_script(TRIM)

    async def ensure_group(self) -> None:
        """Create the stream and its consumer group unless they exist."""
        try:
            await self.client.xgroup_create(self.stream, self.group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def enqueue(self, alerts: Sequence[dict[str, Any]]) -> int:
        """Append each alert not enqueued before, in order; return how many were new."""
        if not alerts:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for alert in alerts:
            keys = [self.stream, alert_key(self.prefix, alert["alert_id"])]
            await self._enqueue(keys, [orjson.dumps(alert), self.expire_seconds], client=pipe)
        entries = await pipe.execute()
        return sum(entry is not None for entry in entries)

    async def trim(self) -> int:
        """Cap the stream at ``review_max_entries``, oldest first, removing only entries
        every group has delivered and acknowledged; return how many were removed."""
        return int(await self._trim([self.stream], [self.max_entries, TRIM_BATCH]))

    async def stats(self) -> QueueStats:
        """XLEN, and the group's pending entries plus those never delivered to it."""
        depth = int(await self.client.xlen(self.stream))
        for group in await self.client.xinfo_groups(self.stream):
            if group["name"] == self.group:
                return QueueStats(depth, int(group["pending"]) + await self._lag(group))
        return QueueStats(depth, depth)

    async def _lag(self, group: dict[str, Any]) -> int:
        if group.get("lag") is not None:
            return int(group["lag"])
        # Redis cannot tell the lag (entries were deleted after the group's position):
        # count what lies after the last delivered entry, at most the whole capped stream.
        after = f"({group['last-delivered-id']}"
        entries: Any = await self.client.xrange(self.stream, after, "+", count=self.max_entries * 2)
        return len(entries)
