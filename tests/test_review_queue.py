"""The review queue and its sink against a real Redis: at most one entry per alert id,
the group created, trimming that never drops an unacknowledged entry, the live severity
threshold, metrics, and a Redis outage leaving records unsettled."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import orjson
import pytest
import redis
from conftest import free_port
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from review_helpers import make_alert, review_settings

from alerts.metrics import Metrics
from alerts.review_queue import QueueStats, ReviewQueue, alert_key, redis_client
from alerts.review_sink import ReviewSink
from config.rules import Rules, RulesError, parse_rules
from config.settings import Settings
from stream.alert_sinks import AlertRecord


@pytest.fixture
def settings(redis_url: str) -> Iterator[Settings]:
    with review_settings(redis_url, review_max_entries=100) as settings:
        yield settings


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Redis]:
    client = redis_client(settings)
    yield client
    await client.aclose()


async def entry_ids(client: Redis, settings: Settings) -> list[str]:
    return [entry for entry, _ in await client.xrange(settings.review_stream)]


async def test_the_same_alerts_enqueued_twice_make_one_entry_each(
    settings: Settings, client: Redis
) -> None:
    """Re-processing enqueues nothing twice; each alert's hash holds its JSON and entry id
    and expires after review_retention_days."""
    queue = ReviewQueue(settings, client)
    await queue.ensure_group()
    first = [make_alert(i) for i in range(5)]
    assert await queue.enqueue(first) == 5
    assert await queue.enqueue([*first, make_alert(5)]) == 1
    entries = await client.xrange(settings.review_stream)
    alerts = [orjson.loads(fields["alert"]) for _, fields in entries]
    assert [a["alert_id"] for a in alerts] == [f"sg-test-{i:04d}" for i in range(6)]
    for entry, fields in entries:
        alert_id = orjson.loads(fields["alert"])["alert_id"]
        stored = await client.hgetall(alert_key(settings.redis_key_prefix, alert_id))
        assert stored == {"alert": fields["alert"], "entry": entry}
        ttl = await client.ttl(alert_key(settings.redis_key_prefix, alert_id))
        assert 0 < ttl <= settings.review_retention_days * 86400


async def test_the_group_is_created_once_on_an_empty_stream(
    settings: Settings, client: Redis
) -> None:
    """ensure_group makes the stream and the group; calling it again is harmless."""
    queue = ReviewQueue(settings, client)
    await queue.ensure_group()
    await queue.ensure_group()
    groups = await client.xinfo_groups(settings.review_stream)
    assert [(g["name"], g["last-delivered-id"]) for g in groups] == [("reviewers", "0-0")]


async def test_trim_caps_only_delivered_and_acknowledged_entries(
    settings: Settings, client: Redis
) -> None:
    """Over the cap, the oldest acknowledged entries go; an entry still pending or never
    delivered stays, so the stream may stay above the cap until reviewers catch up."""
    queue = ReviewQueue(settings, client)
    await queue.ensure_group()
    await queue.enqueue([make_alert(i) for i in range(150)])
    ids = await entry_ids(client, settings)
    await client.xreadgroup("reviewers", "ann", {settings.review_stream: ">"}, count=60)
    await client.xack(settings.review_stream, "reviewers", *ids[:5], *ids[6:30])

    assert await queue.trim() == 5  # entry 5 is pending: nothing at or after it goes
    assert await entry_ids(client, settings) == ids[5:]

    await client.xack(settings.review_stream, "reviewers", ids[5])
    assert await queue.trim() == 25  # entries 30-59 pending, 60-149 never delivered
    assert await entry_ids(client, settings) == ids[30:]
    assert (await queue.stats()).unacknowledged == 120

    await client.xack(settings.review_stream, "reviewers", *ids[30:60])
    assert await queue.trim() == 20  # down to the cap, oldest first
    assert await entry_ids(client, settings) == ids[50:]
    assert await queue.stats() == QueueStats(depth=100, unacknowledged=90)


async def test_trim_waits_for_every_group(settings: Settings, client: Redis) -> None:
    """A second group that has read nothing keeps every entry, however far the first one
    has acknowledged."""
    queue = ReviewQueue(settings, client)
    await queue.ensure_group()
    await queue.enqueue([make_alert(i) for i in range(130)])
    await client.xgroup_create(settings.review_stream, "audit", id="0")
    reply = await client.xreadgroup("reviewers", "ann", {settings.review_stream: ">"})
    await client.xack(settings.review_stream, "reviewers", *[e for e, _ in reply[0][1]])
    assert await queue.trim() == 0
    assert await client.xlen(settings.review_stream) == 130


def records(*severities: str, partition: int = 0) -> list[AlertRecord]:
    return [
        AlertRecord(partition, offset, make_alert(offset, severity))
        for offset, severity in enumerate(severities)
    ]


async def test_sink_enqueues_at_or_above_the_live_threshold_and_counts(
    settings: Settings, client: Redis
) -> None:
    """Below review.min_severity a record is settled at once; a rules change applies to
    the next records; the gauges show depth and unacknowledged entries, read at most once
    a second."""
    rules, now = [Rules()], [0.0]
    metrics = Metrics(CollectorRegistry())
    queue = ReviewQueue(settings, client)
    sink = ReviewSink(queue, lambda: rules[0], metrics, clock=lambda: now[0])
    sink.take(records("info", "low", "medium", "critical"))
    assert (sink.backlog(), sink.first_unsettled(0)) == (3, 1)
    await sink.flush()
    assert (sink.backlog(), sink.first_unsettled(0)) == (0, None)
    rules[0] = parse_rules("review: {min_severity: high}")
    sink.take(records("info", "low", "medium", "high", "critical", partition=1)[3:])
    sink.take(records("medium", partition=2))
    assert sink.backlog() == 2
    await sink.flush()
    stream = await client.xrange(settings.review_stream)
    enqueued = [orjson.loads(f["alert"]) for _, f in stream]
    # Alert 3 came again (re-processing, now "high"): still one entry, the first one.
    assert [(a["alert_id"], a["severity"]) for a in enqueued] == [
        ("sg-test-0001", "low"),
        ("sg-test-0002", "medium"),
        ("sg-test-0003", "critical"),
        ("sg-test-0004", "critical"),
    ]
    value = metrics.registry.get_sample_value
    assert value("settleguard_review_enqueued_total") == 4
    assert value("settleguard_review_queue_depth") == 3  # read at the first flush
    now[0] += 1.0
    await sink.flush()
    assert value("settleguard_review_queue_depth") == 4
    assert value("settleguard_review_queue_pending") == 4


async def test_sink_keeps_records_unsettled_while_redis_is_down(settings: Settings) -> None:
    """Redis unreachable: flush raises and every record stays waiting, so the runner
    commits nothing past it; forget drops a partition that moved away."""
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    client = redis_client(down)
    sink = ReviewSink(ReviewQueue(down, client), Rules, Metrics(CollectorRegistry()))
    sink.take(records("high", "high") + records("low", partition=3))
    with pytest.raises(redis.exceptions.ConnectionError):
        await sink.flush()
    assert (sink.backlog(), sink.first_unsettled(0), sink.first_unsettled(3)) == (3, 0, 0)
    sink.forget([3])
    assert (sink.backlog(), sink.first_unsettled(3)) == (2, None)
    await client.aclose()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("review: {min_severity: urgent}", "review.min_severity"),
        ("review: {min_sev: low}", "review.min_sev"),
    ],
)
def test_review_threshold_is_validated_like_the_other_rules(text: str, message: str) -> None:
    """A bad review section is a rules error naming the key; the default is low."""
    with pytest.raises(RulesError, match=message):
        parse_rules(text)
    assert Rules().review.min_severity == "low"
