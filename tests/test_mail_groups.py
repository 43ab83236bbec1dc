"""Grouping timers on a fake clock, and the mail sink's outbox bookkeeping (settling,
dedupe in a real Redis, retries and permanent rejections) with a fake mailer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import pytest
import redis.asyncio
from prometheus_client import CollectorRegistry

from alerts.mail_dedupe import MailDedupe
from alerts.mail_groups import MailGroups
from alerts.mail_sink import MailSink
from alerts.mailer import MailRejected
from alerts.metrics import Metrics
from config.routing import Grouping
from config.rules import parse_rules
from config.settings import Settings
from stream.alert_sinks import AlertRecord
from tests.conftest import start_service

GROUPING = Grouping(group_wait=30, group_interval=300, repeat_interval=3600)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(offset: int, outlet: str = "W-1", partition: int = 0, **fields: Any) -> AlertRecord:
    alert = {
        "alert_id": fields.pop("alert_id", f"sg-{outlet}-{offset}"),
        "kind": "duplicate_settlement",
        "severity": "high",
        "score": 90.0,
        "outlet_id": outlet,
        "region": "华东-上海",
        "settlement_id": f"S{offset}",
        "order_id": f"O{offset}",
        "event_time": "2026-07-15T10:00:00+08:00",
        "reasons": [{"detector": "crosscheck", "message": "claimed twice"}],
    } | fields
    return AlertRecord(partition, offset, alert)


def test_group_wait_gathers_a_burst() -> None:
    """A new group is due only group_wait after its first alert, with the whole burst."""
    clock = Clock()
    groups = MailGroups(clock)
    groups.add(("r", "W-1"), record(1))
    clock.now += 20
    groups.add(("r", "W-1"), record(2))
    assert groups.due(GROUPING) == []
    clock.now += 10
    assert groups.due(GROUPING) == [("r", "W-1")]
    assert [r.offset for r in groups.take(("r", "W-1"))] == [1, 2]


def test_open_group_waits_group_interval_then_closes_after_repeat_interval() -> None:
    """After a mail, new alerts wait until group_interval since it; once the group has been
    quiet for repeat_interval it is closed and a new alert waits group_wait again."""
    clock = Clock()
    groups = MailGroups(clock)
    key = ("r", "W-1")
    groups.add(key, record(1))
    clock.now += 30
    groups.take(key)
    groups.sent(key)
    sent_at = clock.now
    clock.now += 10
    groups.add(key, record(2))
    clock.now = sent_at + 299
    assert groups.due(GROUPING) == []
    clock.now = sent_at + 300
    assert groups.due(GROUPING) == [key]
    groups.take(key)
    groups.sent(key)
    clock.now += 3600  # quiet for repeat_interval: closed and forgotten
    assert groups.due(GROUPING) == []
    assert key not in groups.groups
    groups.add(key, record(3))
    clock.now += 29
    assert groups.due(GROUPING) == []
    clock.now += 1
    assert groups.due(GROUPING) == [key]


def test_groups_are_per_receiver_and_outlet() -> None:
    """Two outlets, or two receivers, are separate groups with their own timers."""
    clock = Clock()
    groups = MailGroups(clock)
    groups.add(("a", "W-1"), record(1))
    clock.now += 15
    groups.add(("a", "W-2"), record(2, "W-2"))
    groups.add(("b", "W-1"), record(1))
    clock.now += 15
    assert groups.due(GROUPING) == [("a", "W-1")]


# ---------------------------------------------------------------------- the sink

RULES = parse_rules(
    """
mail:
  receivers:
    ops: {to: [ops@example.com]}
    audit: {to: [audit@example.com], language: en}
  routes:
    - match: {severity_at_least: high}
      receivers: [ops, audit]
    - match: {severity: medium}
      receivers: [ops]
  grouping: {group_wait: 10, group_interval: 60, repeat_interval: 600}
  silences:
    - match: {outlet_id: W-SILENT}
"""
)


class FakeMailer:
    """Records mails; fails the next ``fail`` sends with ``error``."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self.fail, self.error = 0, Exception("down")

    async def send(self, message: EmailMessage) -> None:
        if self.fail:
            self.fail -= 1
            raise self.error
        self.sent.append(message)


@pytest.fixture
async def dedupe() -> AsyncIterator[MailDedupe]:
    client = redis.asyncio.Redis.from_url(start_service("redis")["SETTLEGUARD_REDIS_URL"])
    yield MailDedupe(client, f"test-{uuid.uuid4().hex[:8]}:", 60, 600)
    await client.aclose()


def make_sink(dedupe: MailDedupe, clock: Clock, mailer: FakeMailer) -> tuple[MailSink, Metrics]:
    metrics = Metrics(CollectorRegistry())
    sink = MailSink(Settings(), lambda: RULES, metrics, mailer, dedupe, clock)
    return sink, metrics


def value(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


async def test_sink_settles_only_after_the_mail_is_accepted(dedupe: MailDedupe) -> None:
    """Routed alerts stay unsettled until their group's mail went out; unrouted and
    silenced ones never hold the offset back; a burst is one digest per receiver."""
    clock, mailer = Clock(), FakeMailer()
    sink, metrics = make_sink(dedupe, clock, mailer)
    sink.take([record(1), record(2, severity="low"), record(3, "W-SILENT"), record(4)])
    assert sink.first_unsettled(0) == 1 and sink.backlog() == 2
    await sink.flush()
    assert mailer.sent == []
    clock.now += 10
    await sink.flush()
    assert sink.first_unsettled(0) is None and sink.backlog() == 0
    assert sorted(m["To"] for m in mailer.sent) == ["audit@example.com", "ops@example.com"]
    assert all(m["X-Settleguard-Alerts"] == "sg-W-1-1 sg-W-1-4" for m in mailer.sent)
    assert value(metrics, "settleguard_mails_sent_total") == 2
    assert value(metrics, "settleguard_mails_silenced_total") == 1


async def test_an_alert_read_again_is_not_mailed_again(dedupe: MailDedupe) -> None:
    """The same alert id at another offset (re-published, or re-read by another worker
    sharing Redis) settles without a second mail."""
    clock, mailer = Clock(), FakeMailer()
    sink, _ = make_sink(dedupe, clock, mailer)
    sink.take([record(1, severity="medium"), record(7, severity="medium", alert_id="sg-W-1-1")])
    clock.now += 10
    await sink.flush()
    assert len(mailer.sent) == 1 and sink.backlog() == 0
    other, _ = make_sink(dedupe, clock, mailer)
    other.take([record(1, severity="medium")])
    clock.now += 10
    await other.flush()
    assert len(mailer.sent) == 1 and other.backlog() == 0


async def test_failed_send_is_kept_and_retried(dedupe: MailDedupe) -> None:
    """A send that fails raises (the runner backs off), keeps the alert unsettled and its
    claim released; the retry mails it once."""
    clock, mailer = Clock(), FakeMailer()
    sink, metrics = make_sink(dedupe, clock, mailer)
    mailer.fail = 1
    sink.take([record(5, severity="medium")])
    clock.now += 10
    with pytest.raises(Exception, match="down"):
        await sink.flush()
    assert sink.first_unsettled(0) == 5
    assert value(metrics, "settleguard_mails_retried_total") == 1
    await sink.flush()
    assert len(mailer.sent) == 1 and sink.first_unsettled(0) is None


async def test_permanent_rejection_settles_and_is_counted(dedupe: MailDedupe) -> None:
    """A 5xx rejection is counted as failed, kept on the rejected-mail stream, settles the
    record and is not retried."""
    clock, mailer = Clock(), FakeMailer()
    sink, metrics = make_sink(dedupe, clock, mailer)
    mailer.fail, mailer.error = 1, MailRejected("550 no such user")
    sink.take([record(6, severity="medium")])
    clock.now += 10
    await sink.flush()
    assert sink.backlog() == 0 and mailer.sent == []
    assert value(metrics, "settleguard_mails_failed_total") == 1
    kept = await dedupe.redis.xrange(dedupe.rejected_key())
    assert len(kept) == 1, "a rejected mail is kept for operators, not lost"
    assert b"550 no such user" in kept[0][1][b"answer"]
    again, _ = make_sink(dedupe, clock, mailer)
    again.take([record(6, severity="medium")])
    clock.now += 10
    await again.flush()
    assert mailer.sent == []
