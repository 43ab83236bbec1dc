"""`settleguard review` against a real Redis: list, show, confirm, dismiss, auto,
export; `evaluate --verdicts`; `review sample`."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from click.testing import CliRunner, Result
from conftest import free_port
from review_helpers import make_alert, review_settings

from alerts.review_queue import ReviewQueue, alert_key, redis_client
from config.settings import Settings
from stream.cli import cli


@pytest.fixture
def settings(redis_url: str) -> Iterator[Settings]:
    with review_settings(redis_url) as settings:
        yield settings


@pytest.fixture
def db(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    client.close()


def enqueue(settings: Settings, alerts: list[dict[str, Any]]) -> None:
    """Put ``alerts`` on the review queue the way the worker's sink does."""

    async def run() -> None:
        client = redis_client(settings)
        queue = ReviewQueue(settings, client)
        await queue.ensure_group()
        await queue.enqueue(alerts)
        await client.aclose()

    asyncio.run(run())


def review(settings: Settings, *args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, ["review", *args], obj=settings)
    assert (result.exit_code == 0) == ok, result.output
    return result


def listed_ids(result: Result) -> list[str]:
    return [line.split()[-1] for line in result.output.splitlines() if "sg-test-" in line]


def test_list_reads_new_entries_and_shows_the_reviewers_pending_ones(settings: Settings) -> None:
    """`list` reads --new unread entries for --reviewer and shows everything delivered to
    that reviewer and not decided: outlet, kind, severity, score, reasons, id."""
    alerts = [make_alert(i) for i in range(5)]
    enqueue(settings, alerts)
    ann = review(settings, "list", "--reviewer", "ann", "--new", "3")
    assert listed_ids(ann) == ["sg-test-0000", "sg-test-0001", "sg-test-0002"]
    assert "3 alerts pending for ann" in ann.output
    row = next(line for line in ann.output.splitlines() if "sg-test-0001" in line)
    assert row.split()[:4] == ["W001", "amount_spike", "high", "71.0"]
    assert "labor 480 CNY against" in row
    assert listed_ids(review(settings, "list", "--reviewer", "ann", "--new", "0")) == listed_ids(
        ann
    )
    bob = review(settings, "list", "--reviewer", "bob")
    assert listed_ids(bob) == ["sg-test-0003", "sg-test-0004"]


def test_show_prints_the_evidence_and_rejects_an_unknown_id(settings: Settings) -> None:
    """`show` prints every reason with value, expected, threshold, detector and message;
    an unknown id is a clear error."""
    enqueue(settings, [make_alert(7, kind="over_standard", detector="crosscheck")])
    shown = review(settings, "show", "sg-test-0007").output
    for text in (
        "over_standard",
        "W000",
        "S00007",
        "[crosscheck]",
        "value 487.0",
        "expected 200.0",
        "threshold 320.0",
        "labor 480 CNY against",
        "pending",
    ):
        assert text in shown, text
    missing = review(settings, "show", "sg-nope", ok=False)
    assert "no alert 'sg-nope' in the review queue" in missing.output


def test_confirm_and_dismiss_write_contract_verdicts_and_acknowledge(
    settings: Settings, db: redis.Redis
) -> None:
    """A verdict entry has alert_id, verdict, reviewer, reason, decided_at (RFC 3339) and
    the review entry is acknowledged; deciding twice, an unknown id or an unread alert
    are clear errors."""
    enqueue(settings, [make_alert(i) for i in range(4)])
    review(settings, "list", "--reviewer", "ann", "--new", "3")
    review(settings, "confirm", "sg-test-0000", "--reviewer", "ann", "--reason", "no parts")
    review(settings, "dismiss", "sg-test-0001", "--reviewer", "ann", "--reason", "agreed")
    verdicts = [fields for _, fields in db.xrange(settings.verdicts_stream)]
    for fields in verdicts:
        assert datetime.fromisoformat(fields.pop("decided_at")).utcoffset() is not None
    assert verdicts == [
        {
            "alert_id": "sg-test-0000",
            "verdict": "confirmed",
            "reviewer": "ann",
            "reason": "no parts",
        },
        {"alert_id": "sg-test-0001", "verdict": "dismissed", "reviewer": "ann", "reason": "agreed"},
    ]
    pending = db.xpending_range(settings.review_stream, "reviewers", "-", "+", 10)
    entry = db.hget(alert_key(settings.redis_key_prefix, "sg-test-0002"), "entry")
    assert [p["message_id"] for p in pending] == [entry]

    twice = review(settings, "dismiss", "sg-test-0000", "--reviewer", "bob", ok=False)
    assert re.search(r"sg-test-0000 was already decided: confirmed by ann at \d{4}-", twice.output)
    unknown = review(settings, "confirm", "sg-nope", "--reviewer", "ann", ok=False)
    assert "no alert 'sg-nope'" in unknown.output
    unread = review(settings, "confirm", "sg-test-0003", "--reviewer", "ann", ok=False)
    assert "is not pending" in unread.output and "settleguard review list" in unread.output
    assert db.xlen(settings.verdicts_stream) == 2


def write_labels(path: Path, numbers: list[int]) -> Path:
    """Simulator-style labels for the alerts with these numbers (by settlement id)."""
    rows = [
        {
            "id": f"L{n}",
            "type": "inflated_amount",
            "expected_kind": "amount_spike",
            "outlet_id": f"W{n % 7:03d}",
            "settlement_ids": [f"S{n:05d}"],
            "order_ids": [],
            "start": "2026-07-01T09:00:00+00:00",
            "end": "2026-07-01T10:00:00+00:00",
        }
        for n in numbers
    ]
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def test_auto_decides_by_labels_then_all_and_export_feeds_evaluate(
    settings: Settings, db: redis.Redis, tmp_path: Path
) -> None:
    """`auto --labels` confirms labelled findings and dismisses the rest (up to --limit),
    `auto --decide` takes what is left; every entry ends acknowledged; `export` joins
    verdicts and alerts, and `evaluate --verdicts` reports precision per kind and
    detector from them."""
    alerts = [make_alert(i) for i in range(4)]
    alerts += [make_alert(i, kind="duplicate_settlement", detector="crosscheck") for i in (4, 5)]
    enqueue(settings, alerts)
    labels = write_labels(tmp_path / "labels.jsonl", [0, 1, 4])
    by_labels = review(settings, "auto", "--labels", str(labels), "--limit", "5", "--no-progress")
    assert "decided 5 alerts as auto: 3 confirmed, 2 dismissed" in by_labels.output
    rest = review(settings, "auto", "--decide", "dismissed", "--reviewer", "robot")
    assert "decided 1 alerts as robot: 0 confirmed, 1 dismissed" in rest.output
    group = db.xinfo_groups(settings.review_stream)[0]
    assert (group["pending"], group["lag"]) == (0, 0)

    db.delete(alert_key(settings.redis_key_prefix, "sg-test-0003"))  # expired
    out = tmp_path / "verdicts.jsonl"
    exported = review(settings, "export", "--out", str(out))
    assert "exported 5 verdicts" in exported.output and "1 without their alert" in exported.output
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert {(v["alert_id"], v["verdict"]) for v in lines} == {
        ("sg-test-0000", "confirmed"),
        ("sg-test-0001", "confirmed"),
        ("sg-test-0002", "dismissed"),
        ("sg-test-0004", "confirmed"),
        ("sg-test-0005", "dismissed"),
    }
    assert all(v["alert"]["alert_id"] == v["alert_id"] for v in lines)

    result = CliRunner().invoke(cli, ["evaluate", "--verdicts", str(out), "--json"], obj=settings)
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.output)
    assert report["overall"] == {"confirmed": 3, "dismissed": 2, "precision": 0.6}
    assert report["by_kind"]["amount_spike"] == {
        "confirmed": 2,
        "dismissed": 1,
        "precision": 2 / 3,
    }
    assert report["by_detector"]["crosscheck"] == {
        "confirmed": 1,
        "dismissed": 1,
        "precision": 0.5,
    }
    text = CliRunner().invoke(cli, ["evaluate", "--verdicts", str(out)], obj=settings).output
    assert "Precision by detector" in text and "66.7%" in text


def test_auto_needs_exactly_one_way_to_decide(settings: Settings) -> None:
    """Neither or both of --decide and --labels is a usage error that says which to give."""
    neither = review(settings, "auto", ok=False)
    assert "exactly one of --decide VERDICT or --labels" in neither.output


def test_evaluate_verdicts_names_a_bad_line(settings: Settings, tmp_path: Path) -> None:
    """A line that is not a verdict with its alert is an error naming the line; --verdicts
    goes without EVENTS LABELS ALERTS, and evaluate needs one or the other."""
    bad = tmp_path / "verdicts.jsonl"
    bad.write_text('{"alert_id": "a", "verdict": "maybe", "reviewer": "r", "decided_at": "t"}\n')
    result = CliRunner().invoke(cli, ["evaluate", "--verdicts", str(bad)], obj=settings)
    assert result.exit_code == 1
    assert "verdicts.jsonl:1: not a verdict line" in result.output
    assert "neither confirmed nor dismissed" in result.output
    no_args = CliRunner().invoke(cli, ["evaluate"], obj=settings)
    assert no_args.exit_code == 2 and "give EVENTS LABELS ALERTS, or --verdicts" in no_args.output
    both = CliRunner().invoke(cli, ["evaluate", str(bad), "--verdicts", str(bad)], obj=settings)
    assert both.exit_code == 2 and "--verdicts FILE replaces EVENTS LABELS ALERTS" in both.output


def test_redis_down_is_a_clear_error(settings: Settings) -> None:
    """Nothing listening at SETTLEGUARD_REDIS_URL: say where and how to start Redis,
    without printing the URL's password."""
    down = settings.model_copy(update={"redis_url": f"redis://:s3cret@127.0.0.1:{free_port()}/0"})
    result = review(down, "list", "--reviewer", "ann", ok=False)
    assert "cannot reach Redis at 127.0.0.1:" in result.output
    assert "scripts/services.sh start redis" in result.output
    assert "s3cret" not in result.output


def test_sample_is_deterministic_per_seed_and_capped_per_kind(tmp_path: Path) -> None:
    """The same alerts (any order, repeats included) and seed give the same sample of at
    most --per-kind alerts per kind at or above --min-severity; another seed another."""
    kinds = ["amount_spike", "over_standard", "frequency_spike", "parts_not_issued"]
    alerts = [
        make_alert(i, severity=("info", "low", "high")[i % 3], kind=kinds[i % 3]) for i in range(90)
    ]
    alerts += [make_alert(i, kind="parts_not_issued") for i in (100, 101)]  # fewer than 4
    shuffled = alerts + alerts[:10]
    random.Random(1).shuffle(shuffled)
    inputs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for path, rows in zip(inputs, (alerts, shuffled), strict=True):
        path.write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in rows))

    def sample(source: Path, seed: int, name: str) -> list[dict[str, Any]]:
        out = tmp_path / name
        args = ["review", "sample", str(source), "--per-kind", "4", "--seed", str(seed)]
        result = CliRunner().invoke(cli, [*args, "--out", str(out)], obj=Settings())
        assert result.exit_code == 0, result.output
        return [orjson.loads(line) for line in out.read_bytes().splitlines()]

    first, again, other = (
        sample(inputs[0], 7, "1"),
        sample(inputs[1], 7, "2"),
        sample(inputs[0], 8, "3"),
    )
    assert first == again and first != other
    per_kind = {k: [a for a in first if a["kind"] == k] for k in kinds}
    assert {k: len(v) for k, v in per_kind.items()} == {
        "amount_spike": 0,  # every amount_spike here is info, below --min-severity low
        "over_standard": 4,
        "frequency_spike": 4,
        "parts_not_issued": 2,
    }
    assert len({a["alert_id"] for a in first}) == len(first)
