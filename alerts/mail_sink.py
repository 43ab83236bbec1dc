"""The mail sink: routes alerts to receivers, groups them per outlet, mails them over SMTP.

The persisted outbox is the alerts topic itself (see ``stream/alert_sinks.py``): a record
settles, and its offset may commit, only once every mail it belongs in was accepted by the
SMTP server, or permanently rejected (counted in ``mails_failed``), or when it needs no
mail (silenced, routed nowhere, already mailed). Redis (``alerts/mail_dedupe.py``) makes
sure an alert is mailed to a receiver once, whatever the re-reading after a crash, a
rebalance or a worker publishing the same alert again. Routes, grouping and silences are
read from the live rule set at each step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import redis.asyncio

from alerts.mail_dedupe import Claim, MailDedupe
from alerts.mail_groups import GroupKey, MailGroups
from alerts.mail_render import MailRenderer
from alerts.mailer import MailRejected, SmtpMailer
from alerts.metrics import Metrics
from config.routing import MailRules
from config.rules import Rules
from config.settings import Settings
from stream.alert_sinks import AlertRecord

log = logging.getLogger(__name__)


class Mailer(Protocol):
    async def send(self, message: Any) -> None: ...


class MailSink:
    """An ``AlertSink`` that mails alerts (see the module docstring)."""

    name = "mail"

    def __init__(
        self,
        settings: Settings,
        current_rules: Callable[[], Rules],
        metrics: Metrics,
        mailer: Mailer | None = None,
        dedupe: MailDedupe | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.current_rules, self.metrics = current_rules, metrics
        self.mailer = mailer or SmtpMailer(settings)
        self.dedupe = dedupe or MailDedupe(
            redis.asyncio.Redis.from_url(settings.redis_url),
            settings.redis_key_prefix,
            settings.mail_claim_seconds,
            settings.mail_dedupe_days * 86400.0,
        )
        self.renderer = MailRenderer(settings.smtp_from, settings.alert_url)
        self.groups = MailGroups(clock)
        self.outstanding: dict[tuple[int, int], int] = {}  # record -> mails still owed

    def take(self, records: Sequence[AlertRecord]) -> None:
        mail = self.current_rules().mail
        for record in records:
            receivers = mail.receivers_for(record.alert)
            if not receivers:
                continue
            silence = mail.silenced_by(record.alert)
            if silence is not None:
                self.metrics.mails_silenced.inc()
                log.info("alert %s silenced (%s)", record.alert["alert_id"], silence.comment)
                continue
            self.outstanding[(record.partition, record.offset)] = len(receivers)
            for receiver in receivers:
                self.groups.add((receiver, str(record.alert["outlet_id"])), record)

    async def flush(self) -> None:
        mail = self.current_rules().mail
        for key in self.groups.due(mail.grouping):
            await self._deliver(key, mail)

    def first_unsettled(self, partition: int) -> int | None:
        return min((o for p, o in self.outstanding if p == partition), default=None)

    def backlog(self) -> int:
        return len(self.outstanding)

    def forget(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self.groups.forget(gone)
        self.outstanding = {k: n for k, n in self.outstanding.items() if k[0] not in gone}

    # ------------------------------------------------------------------ delivery

    async def _deliver(self, key: GroupKey, mail: MailRules) -> None:
        """Mail the due alerts of one group; raise (alerts kept) when it may work later."""
        receiver_name = key[0]
        records = self.groups.take(key)
        receiver = mail.receivers.get(receiver_name)
        if receiver is None:  # a pushed rule set dropped the receiver: nobody to mail
            self._settle(records)
            return
        by_id: dict[str, list[AlertRecord]] = {}
        for record in records:  # the same alert published twice is mailed once
            by_id.setdefault(str(record.alert["alert_id"]), []).append(record)
        claimed: list[str] = []
        waiting: list[AlertRecord] = []
        done: set[str] = set()
        try:
            for alert_id, copies in by_id.items():
                claim = await self.dedupe.claim(alert_id, receiver_name)
                if claim is Claim.OURS:
                    claimed.append(alert_id)
                elif claim is Claim.BUSY:
                    waiting += copies
                else:
                    done.add(alert_id)
                    self._settle(copies)
        except Exception:
            kept = [r for alert_id, rs in by_id.items() if alert_id not in done for r in rs]
            await self._give_back(key, claimed, receiver_name, kept)
            raise
        if waiting:
            self.groups.put_back(key, waiting)
        if claimed:
            await self._send(key, receiver_name, mail, claimed, by_id)

    async def _send(
        self,
        key: GroupKey,
        receiver_name: str,
        mail: MailRules,
        claimed: list[str],
        by_id: dict[str, list[AlertRecord]],
    ) -> None:
        records = [record for alert_id in claimed for record in by_id[alert_id]]
        alerts = [by_id[alert_id][0].alert for alert_id in claimed]
        receiver = mail.receivers[receiver_name]
        try:
            await self.mailer.send(self.renderer.render(receiver, alerts))
        except MailRejected as exc:
            self.metrics.mails_failed.inc()
            log.error(
                "mail to receiver %s about alerts %s rejected for good: %s",
                receiver_name,
                " ".join(claimed),
                exc,
            )
            try:
                await self.dedupe.reject(claimed, receiver_name, list(receiver.to), str(exc))
            except Exception as error:  # the claims expire; a re-read records it then
                log.warning("could not record the rejected mail in Redis: %r", error)
            self._settle(records)
            return
        except Exception:
            self.metrics.mails_retried.inc()
            await self._give_back(key, claimed, receiver_name, records)
            raise
        self.metrics.mails_sent.inc()
        self.groups.sent(key)
        await self._finish(claimed, receiver_name, "sent")
        self._settle(records)

    async def _finish(self, alert_ids: list[str], receiver_name: str, outcome: str) -> None:
        try:
            await self.dedupe.finish(alert_ids, receiver_name, outcome)
        except Exception as exc:  # the claims stay until they expire; the records settle
            log.warning("could not record mails as %s in Redis: %r", outcome, exc)

    async def _give_back(
        self, key: GroupKey, claimed: list[str], receiver_name: str, records: list[AlertRecord]
    ) -> None:
        """A failed attempt: release our claims and keep the alerts for the retry."""
        self.groups.put_back(key, records)
        try:
            await self.dedupe.release(claimed, receiver_name)
        except Exception as exc:  # the claims expire on their own
            log.warning("could not release mail claims in Redis: %r", exc)

    def _settle(self, records: Iterable[AlertRecord]) -> None:
        for record in records:
            where = (record.partition, record.offset)
            left = self.outstanding.get(where)
            if left is None:
                continue
            if left <= 1:
                del self.outstanding[where]
            else:
                self.outstanding[where] = left - 1
