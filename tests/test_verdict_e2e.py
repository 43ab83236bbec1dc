"""The review loop end to end on real Kafka and Redis: an alert reaches the review queue,
a reviewer dismisses it with `settleguard review`, the worker's relay carries the verdict
to the outlet's partition, and the same pattern no longer alerts; the outlet's rating
figures on the compacted ratings topic count the verdict, once, also after kill -9."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from stream.evaluate import SEVERITY_RANK
from tests.conftest import run_settleguard
from tests.events_factory import EventFactory
from tests.kafka_harness import (
    publish,
    read_alerts,
    read_to_end,
    scrape,
    start_worker,
    stop,
    wait_consumed,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OUTLET = "W-LOOP-1"
LOG: list[Path] = []  # the running test's worker log, quoted when a wait fails


def jobs(first: int, count: int, labor: float) -> list[bytes]:
    """``count`` completed and claimed jobs of OUTLET, four hours apart, from job ``first``."""
    f = EventFactory(OUTLET)
    lines = []
    for n in range(first, first + count):
        created = 4.0 * n
        lines += [
            f.order_dict(f"O{n}", "created", created, event_id=f"c{n}"),
            f.order_dict(f"O{n}", "completed", created + 2.0, event_id=f"d{n}"),
            f.settlement_dict(f"S{n}", f"O{n}", created + 2.5, labor=labor, event_id=f"s{n}"),
        ]
    return [orjson.dumps(line) for line in lines]


def wait_for(check: Callable[[], Any], worker: subprocess.Popen[Any], timeout: float = 120) -> Any:
    """Poll ``check`` until it returns something true; fail (with the end of the worker's
    log, which the test keeps in LOG) if the worker exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        ended = worker.poll() is not None
        if ended or time.monotonic() > deadline:
            tail = LOG[0].read_text(errors="replace")[-3000:] if LOG else ""
            raise AssertionError(f"{'the worker exited' if ended else 'timed out'}:\n{tail}")
        time.sleep(0.5)


def reviewable(env: dict[str, str], settlement: str) -> list[dict[str, Any]]:
    """Alerts at or above low about ``settlement`` on the alerts topic."""
    alerts = read_alerts(env["SETTLEGUARD_KAFKA_BOOTSTRAP"], env["SETTLEGUARD_ALERTS_TOPIC"])
    return [
        a
        for a in alerts
        if a["settlement_id"] == settlement and SEVERITY_RANK[a["severity"]] >= SEVERITY_RANK["low"]
    ]


def latest_rating(env: dict[str, str]) -> dict[str, Any] | None:
    """The last rating record of OUTLET on the ratings topic."""
    values = asyncio.run(
        read_to_end(env["SETTLEGUARD_KAFKA_BOOTSTRAP"], env["SETTLEGUARD_RATINGS_TOPIC"])
    )
    ratings = [orjson.loads(v) for v in values]
    mine = [r for r in ratings if r["outlet_id"] == OUTLET]
    return mine[-1] if mine else None


async def relay_again(bootstrap: str, topic: str, verdict: bytes) -> None:
    """Publish ``verdict`` once more, as a relay that crashed before its XACK would."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, verdict, key=OUTLET.encode())
    finally:
        await producer.stop()


def test_a_dismissal_travels_to_the_worker_and_silences_the_pattern_once(
    isolated_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    env = {**isolated_env, "SETTLEGUARD_REDIS_URL": redis_url}
    bootstrap, settlements = (
        env["SETTLEGUARD_KAFKA_BOOTSTRAP"],
        env["SETTLEGUARD_SETTLEMENTS_TOPIC"],
    )
    port = int(env["SETTLEGUARD_WEB_PORT"])
    run_settleguard(["topics", "create"], env)
    LOG[:] = [tmp_path / "worker.log"]
    with LOG[0].open("wb") as log:
        worker = start_worker(env, log)
        try:
            # 40 ordinary jobs, then one at a new, higher labour tariff: an alert.
            asyncio.run(publish(bootstrap, settlements, jobs(0, 40, 150.0) + jobs(40, 1, 255.0)))
            alert = wait_for(lambda: reviewable(env, "S40"), worker)[0]
            # the reviewer reads it from the review queue and dismisses it
            listed = wait_for(
                lambda: (
                    alert["alert_id"]
                    in run_settleguard(["review", "list", "--reviewer", "ann"], env)
                    and "listed"
                ),
                worker,
            )
            assert listed
            run_settleguard(
                [
                    "review",
                    "dismiss",
                    alert["alert_id"],
                    "--reviewer",
                    "ann",
                    "--reason",
                    "new contract",
                ],
                env,
            )
            wait_for(
                lambda: scrape(port).get('settleguard_verdicts_total{verdict="dismissed"}', 0) >= 1,
                worker,
            )
            # the same tariff again: usual now for this outlet
            asyncio.run(publish(bootstrap, settlements, jobs(41, 5, 255.0) + jobs(46, 1, 700.0)))
            wait_for(lambda: reviewable(env, "S46"), worker)  # far beyond: still alerts
            repeats = [a for n in range(41, 46) for a in reviewable(env, f"S{n}")]
            assert repeats == [], "a dismissed pattern alerted again"
            rating = wait_for(
                lambda: (r := latest_rating(env)) is not None and r["dismissed"] == 1 and r,
                worker,
            )
            assert rating["settlements"] == 47
            # After kill -9 and a restart, the outlet's state (from the changelog) knows
            # the verdict: relayed again (the relay is at least once), it is not reapplied.
            verdicts = asyncio.run(read_to_end(bootstrap, env["SETTLEGUARD_VERDICTS_TOPIC"]))
            assert len(verdicts) == 1
            topics = [env["SETTLEGUARD_VERDICTS_TOPIC"], settlements]
            assert wait_consumed(bootstrap, env["SETTLEGUARD_APP_ID"], topics, 60, [worker]) == 1
            worker.kill()
            worker.wait(30)
            worker = start_worker(env, log)
            asyncio.run(relay_again(bootstrap, env["SETTLEGUARD_VERDICTS_TOPIC"], verdicts[0]))
            asyncio.run(publish(bootstrap, settlements, jobs(47, 1, 150.0)))
            rating = wait_for(
                lambda: (r := latest_rating(env)) is not None and r["settlements"] == 48 and r,
                worker,
            )
            assert rating["dismissed"] == 1, "a verdict was applied twice"
            assert scrape(port)['settleguard_verdicts_total{verdict="dismissed"}'] == 0
            assert rating["stars"] is not None
            samples = scrape(port)
            assert (
                samples[f'settleguard_outlet_rating{{figure="dismissed",outlet_id="{OUTLET}"}}']
                == 1
            )
        finally:
            stop(worker)
