"""A reviewer's side of the review queue: read alerts as a consumer of the group, look
one up, and record a verdict (CONTRACT section 3) — the reference for downstream teams.

Reading uses ``XREADGROUP`` (new entries with ``>``, this reviewer's unacknowledged
ones with ``0``). Deciding is one Lua script, so two reviewers deciding the same alert at
once cannot both write a verdict: it checks the alert is known, not decided yet and its
entry is pending in the group, then ``XADD``s the verdict, marks the alert's hash
(``verdict``, ``verdict_entry``) and ``XACK``s the entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from redis.asyncio import Redis

from alerts.review_queue import ReviewQueue, alert_key
from config.settings import Settings

Verdict = Literal["confirmed", "dismissed"]
VERDICTS: tuple[Verdict, ...] = ("confirmed", "dismissed")

#: KEYS: alert hash, review stream, verdicts stream.
#: ARGV: group, alert id, verdict, reviewer, reason, decided_at.
#: Returns {'ok', verdict entry id} or {problem, detail} (for an alert decided before:
#: the verdict, and who decided when while the verdict entry is still in the stream).
DECIDE = """
local entry = redis.call('HGET', KEYS[1], 'entry')
if not entry then return {'unknown', ''} end
local decided = redis.call('HMGET', KEYS[1], 'verdict', 'verdict_entry')
if decided[1] then
  local by = redis.call('XRANGE', KEYS[3], decided[2], decided[2])
  if #by == 0 then return {'decided', decided[1]} end
  local fields = {}
  for i = 1, #by[1][2], 2 do fields[by[1][2][i]] = by[1][2][i + 1] end
  return {'decided', decided[1] .. ' by ' .. fields['reviewer'] .. ' at ' .. fields['decided_at']}
end
if #redis.call('XPENDING', KEYS[2], ARGV[1], entry, entry, 1) == 0 then
  return {'not_pending', entry}
end
local verdict_entry = redis.call('XADD', KEYS[3], '*', 'alert_id', ARGV[2],
  'verdict', ARGV[3], 'reviewer', ARGV[4], 'reason', ARGV[5], 'decided_at', ARGV[6])
redis.call('HSET', KEYS[1], 'verdict', ARGV[3], 'verdict_entry', verdict_entry)
redis.call('XACK', KEYS[2], ARGV[1], entry)
return {'ok', verdict_entry}
"""


class ReviewError(Exception):
    """A request the queue cannot honour; the message says what to do instead."""


@dataclass(frozen=True, slots=True)
class Pending:
    """An alert delivered to a reviewer and not yet decided."""

    entry: str
    alert: dict[str, Any]


def unknown(alert_id: str) -> ReviewError:
    """The error for an alert id the queue does not know."""
    return ReviewError(
        f"no alert {alert_id!r} in the review queue (wrong id, below the review severity, "
        "or expired after review_retention_days); `settleguard review list` shows the "
        "pending ones"
    )


def now_rfc3339() -> str:
    """The current time as RFC 3339 with offset (UTC), for ``decided_at``."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class ReviewDesk:
    """Read, show and decide alerts of the review queue as one reviewer."""

    def __init__(self, settings: Settings, client: Redis, reviewer: str) -> None:
        self.client, self.reviewer = client, reviewer
        self.queue = ReviewQueue(settings, client)
        self.stream, self.group = settings.review_stream, settings.review_group
        self.verdicts_stream = settings.verdicts_stream
        self.prefix = settings.redis_key_prefix
        self._decide = client.register_script(DECIDE)

    async def pending(self, new: int) -> list[Pending]:
        """Read up to ``new`` entries nobody has read yet, then return every entry
        delivered to this reviewer and not acknowledged (oldest first)."""
        await self.queue.ensure_group()
        if new > 0:
            await self._read(">", new)
        return await self._read("0", None)

    async def _read(self, start: str, count: int | None) -> list[Pending]:
        reply: Any = await self.client.xreadgroup(
            self.group, self.reviewer, {self.stream: start}, count=count
        )
        return [
            Pending(entry, orjson.loads(fields["alert"]))
            for _, entries in reply
            for entry, fields in entries
            if fields  # an entry trimmed while pending has no fields (never trimmed here)
        ]

    async def alert(self, alert_id: str) -> dict[str, Any]:
        """The enqueued alert ``alert_id``, with its ``entry`` and any ``verdict``."""
        stored: Any = await self.client.hgetall(alert_key(self.prefix, alert_id))
        if not stored:
            raise unknown(alert_id)
        alert: dict[str, Any] = orjson.loads(stored.pop("alert"))
        return {**alert, **stored}

    async def decide(self, alert_id: str, verdict: Verdict, reason: str) -> str:
        """Write the verdict to the verdicts stream and acknowledge the alert's entry;
        return the verdict entry id."""
        if verdict not in VERDICTS:
            raise ReviewError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        keys = [alert_key(self.prefix, alert_id), self.stream, self.verdicts_stream]
        args = [self.group, alert_id, verdict, self.reviewer, reason, now_rfc3339()]
        outcome, detail = await self._decide(keys, args)
        if outcome == "ok":
            return str(detail)
        if outcome == "unknown":
            raise unknown(alert_id)
        if outcome == "decided":
            raise ReviewError(f"alert {alert_id} was already decided: {detail}")
        raise ReviewError(
            f"alert {alert_id} (entry {detail}) is not pending in group {self.group!r}: "
            "read it first with `settleguard review list`, or another consumer has "
            "acknowledged it already"
        )
