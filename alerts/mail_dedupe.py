"""Never mail an alert twice to a receiver, across workers and restarts (Redis).

Key ``<prefix>mailed:<alert_id>:<receiver>`` (one alert may go to several receivers).
Before sending, a worker *claims* it (SET NX with a short expiry, holding the worker's
token); when the server accepts the mail the key becomes ``sent`` and is kept for
``keep_seconds``; when the send fails the claim is *released* (deleted, only if still
ours) so a retry can claim it again; a permanent rejection is kept as ``rejected``. A
worker that dies between claim and answer leaves a claim that expires after
``claim_seconds``: the alert is then mailed by whoever re-reads it (an at-least-once
window no longer than one SMTP conversation, against losing the alert).
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


REJECTED_KEPT = 10_000
"""Permanently rejected mails kept for operators (a Redis Stream, oldest trimmed)."""


class Claim(enum.Enum):
    """What a claim attempt found."""

    OURS = "ours"  # send it now
    DONE = "done"  # mailed (or rejected for good) already: settle
    BUSY = "busy"  # another worker is sending it: ask again later


class MailDedupe:
    """Claims, finishes and releases alert mails in Redis."""

    def __init__(self, redis: Any, prefix: str, claim_seconds: float, keep_seconds: float) -> None:
        """``redis`` is a ``redis.asyncio.Redis`` (or anything with the same commands)."""
        self.redis, self.prefix = redis, prefix
        self.claim_ms, self.keep_ms = int(claim_seconds * 1000), int(keep_seconds * 1000)
        self.token = f"claimed:{uuid.uuid4().hex}"

    def key(self, alert_id: str, receiver: str) -> str:
        return f"{self.prefix}mailed:{alert_id}:{receiver}"

    async def claim(self, alert_id: str, receiver: str) -> Claim:
        """Try to take the right to mail ``alert_id`` to ``receiver``."""
        key = self.key(alert_id, receiver)
        if await self.redis.set(key, self.token, nx=True, px=self.claim_ms):
            return Claim.OURS
        holder = await self.redis.get(key)
        if holder is None:  # expired between the two calls: try once more
            return await self.claim(alert_id, receiver)
        held = holder.decode() if isinstance(holder, bytes) else str(holder)
        if held == self.token:  # ours from an attempt whose release did not reach Redis
            return Claim.OURS
        return Claim.BUSY if held.startswith("claimed:") else Claim.DONE

    async def finish(self, alert_ids: list[str], receiver: str, outcome: str) -> None:
        """Record the final ``outcome`` (``sent`` or ``rejected``) of our claims."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for alert_id in alert_ids:
                pipe.set(self.key(alert_id, receiver), outcome, px=self.keep_ms)
            await pipe.execute()

    def rejected_key(self) -> str:
        """The Redis Stream of mails the SMTP server refused for good."""
        return f"{self.prefix}mail:rejected"

    async def reject(
        self, alert_ids: list[str], receiver: str, recipients: list[str], answer: str
    ) -> None:
        """Record a permanent rejection: the claims become ``rejected`` (never retried) and
        the mail is kept on the stream ``<prefix>mail:rejected`` (last ``REJECTED_KEPT``)
        with its receiver, recipients, alert ids and the server's answer, so that no mail
        disappears silently: fix the address, then re-send from there."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for alert_id in alert_ids:
                pipe.set(self.key(alert_id, receiver), "rejected", px=self.keep_ms)
            fields = {
                "receiver": receiver,
                "to": ", ".join(recipients),
                "alert_ids": " ".join(alert_ids),
                "answer": answer,
            }
            pipe.xadd(self.rejected_key(), fields, maxlen=REJECTED_KEPT, approximate=True)
            await pipe.execute()

    async def release(self, alert_ids: list[str], receiver: str) -> None:
        """Give our claims back after a failed send, so a retry may claim them."""
        for alert_id in alert_ids:
            await self.redis.eval(RELEASE, 1, self.key(alert_id, receiver), self.token)
