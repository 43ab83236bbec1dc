"""Alert mail end to end: a worker subprocess on real Kafka and Redis mails the alerts of
hand-made events through a real SMTP server (scripts/smtp_maildir.py), whose stored
messages are parsed here as MIME; and an SMTP outage mid-stream loses and repeats
nothing."""

from __future__ import annotations

import asyncio
import email
import re
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pytest

from config.rules import SEVERITIES, load_rules
from tests.conftest import ROOT, free_port, run_settleguard, start_service
from tests.events_factory import EventFactory
from tests.kafka_harness import publish, read_alerts, scrape, start_worker, stop, total

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ALERT_ID = re.compile(r"sg-[0-9a-f]{24}")


@pytest.fixture
def mail_env(isolated_env: dict[str, str]) -> dict[str, str]:
    """isolated_env plus Redis with a key prefix of this test's own."""
    redis_url = start_service("redis")["SETTLEGUARD_REDIS_URL"]
    suffix = isolated_env["SETTLEGUARD_APP_ID"].rsplit("-", 1)[-1]
    return isolated_env | {
        "SETTLEGUARD_REDIS_URL": redis_url,
        "SETTLEGUARD_REDIS_KEY_PREFIX": f"test-{suffix}:",
        "SETTLEGUARD_ALERT_URL": "https://review.example/alerts/{alert_id}",
        "SETTLEGUARD_SMTP_FROM": "settleguard@example.com",
    }


def smtp_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(3) == b"220"
    except OSError:
        return False


@contextmanager
def private_smtp(
    port: int, maildir: Path, reject: tuple[str, ...] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """This test's own SMTP server on ``port`` storing mail in ``maildir`` and answering
    550 to recipients matching a ``reject`` glob."""
    rejecting = [arg for pattern in reject for arg in ("--reject", pattern)]
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "smtp_maildir.py"), "--port", str(port),
         "--maildir", str(maildir), *rejecting],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not smtp_answers(port):
            assert server.poll() is None and time.monotonic() < deadline, "smtp did not start"
            time.sleep(0.1)
        yield server
    finally:
        server.terminate()
        server.wait(10)


def mails_to(maildir: Path, addresses: set[str]) -> list[EmailMessage]:
    """The stored messages whose envelope names one of ``addresses``."""
    found = []
    for path in sorted(maildir.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if set(str(message["X-Envelope-To"]).split(", ")) & addresses:
            found.append(message)
    return found  # type: ignore[return-value]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def mailed(messages: list[EmailMessage]) -> Counter[tuple[str, str]]:
    """(recipient, alert id) -> how many mails named it, read from the text parts."""
    return Counter(
        (str(message["To"]), alert_id)
        for message in messages
        for alert_id in set(ALERT_ID.findall(text_of(message)))
    )


def wait_for(check: Callable[[], bool], timeout: float, worker: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert worker.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def duplicates(outlet: str, region: str, orders: int, day: float = 0.0) -> list[bytes]:
    """Events of ``orders`` completed jobs of ``outlet``, each claimed twice."""
    f = EventFactory(outlet, region)
    lines = []
    for n in range(orders):
        at = day * 24 + 1.0 + n
        lines += [
            f.order_dict(f"{outlet}-O{n}", "created", at),
            f.order_dict(f"{outlet}-O{n}", "completed", at + 0.5),
            f.settlement_dict(f"{outlet}-S{n}a", f"{outlet}-O{n}", at + 0.6),
            f.settlement_dict(f"{outlet}-S{n}b", f"{outlet}-O{n}", at + 0.7),
        ]
    return [orjson.dumps(line) for line in lines]


def amount_spike(outlet: str, region: str) -> list[bytes]:
    """60 normal jobs of ``outlet`` (labour 146-154 CNY), then one claiming 600."""
    f = EventFactory(outlet, region)
    events = []
    for n in range(61):
        labor = 600.0 if n == 60 else 150.0 + (n % 5 - 2) * 2.0
        created, done = 4.0 * n, 4.0 * n + 2.0
        events += [
            f.order_dict(f"O{n}", "created", created),
            f.order_dict(f"O{n}", "completed", done),
            f.settlement_dict(f"S{n}", f"O{n}", done + 0.5, labor=labor),
        ]
    return [orjson.dumps(e) for e in events]


def expected_mails(env: dict[str, str], rules_path: Path) -> Counter[tuple[str, str]]:
    """What the rule set says must be mailed, from the alerts the worker published."""
    mail = load_rules(rules_path).mail
    alerts = read_alerts(env["SETTLEGUARD_KAFKA_BOOTSTRAP"], env["SETTLEGUARD_ALERTS_TOPIC"])
    return Counter(
        {
            (", ".join(mail.receivers[name].to), alert["alert_id"]): 1
            for alert in alerts
            if mail.silenced_by(alert) is None
            for name in mail.receivers_for(alert)
        }
    )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_worker_mails_routed_alerts_in_digests_and_honours_silences(
    mail_env: dict[str, str], tmp_path: Path
) -> None:
    """Routed alerts arrive once per receiver: a single alert in Chinese with reasons, link
    and an inline chart; a burst of an outlet as one digest per receiver (English for the
    English group); alerts under a month-end silence are not mailed."""
    smtp = start_service("smtp")
    maildir = Path(smtp["SETTLEGUARD_SMTP_MAILDIR"])
    env = mail_env | {k: smtp[k] for k in ("SETTLEGUARD_SMTP_HOST", "SETTLEGUARD_SMTP_PORT")}
    suffix = uuid.uuid4().hex[:8]
    ops, audit = f"ops-{suffix}@example.com", f"audit-{suffix}@example.com"
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"""
version: mail-e2e
mail:
  receivers:
    ops: {{to: [{ops}]}}
    audit: {{to: [{audit}], language: en}}
  routes:
    - match: {{region: "华东-*"}}
      receivers: [ops]
      continue: true
    - match: {{kind: duplicate_settlement}}
      receivers: [audit]
  grouping: {{group_wait: 3s, group_interval: 5s, repeat_interval: 1m}}
  silences:
    - match: {{region: "华南-*"}}
      window: {{days_of_month: ["28-31", 1]}}
      comment: month-end batches
""",
        encoding="utf-8",
    )
    run_settleguard(["topics", "create"], env)
    lines = (
        amount_spike("MAIL-A", "华东-上海")
        + duplicates("MAIL-B", "华东-杭州", 3)
        + duplicates("MAIL-C", "华南-广州", 2)
    )
    bootstrap = env["SETTLEGUARD_KAFKA_BOOTSTRAP"]
    log = (tmp_path / "worker.log").open("wb")
    worker = start_worker(env, log, "--config", str(rules))
    try:
        asyncio.run(publish(bootstrap, env["SETTLEGUARD_SETTLEMENTS_TOPIC"], lines))
        wait_for(lambda: len(mailed(mails_to(maildir, {ops, audit}))) >= 7, 120, worker)
        time.sleep(4)  # anything more would be a duplicate: give it time to show
        messages = mails_to(maildir, {ops, audit})
        samples = scrape(int(env["SETTLEGUARD_WEB_PORT"]))
    finally:
        stop(worker)
    expected = expected_mails(env, rules)
    alerts = read_alerts(bootstrap, env["SETTLEGUARD_ALERTS_TOPIC"])
    by_outlet = Counter(a["outlet_id"] for a in alerts)
    assert by_outlet["MAIL-A"] == 1 and by_outlet["MAIL-B"] == 3 and by_outlet["MAIL-C"] == 2
    assert mailed(messages) == expected
    assert len(expected) == 1 + 3 + 3  # A to ops; B to ops and audit; C silenced
    assert len(messages) == 3
    assert total(samples, "settleguard_mails_sent_total") == 3
    assert total(samples, "settleguard_mails_silenced_total") == 2

    [single] = [m for m in messages if "MAIL-A" in str(m["Subject"])]
    [spike] = [a for a in alerts if a["outlet_id"] == "MAIL-A"]
    assert single["To"] == ops
    assert single["Subject"].startswith("[settleguard] 网点 MAIL-A · 金额异常偏高 · 严重度 ")
    text = text_of(single)
    assert f"https://review.example/alerts/{spike['alert_id']}" in text
    assert "检测器 amount" in text and "600" in text and "预期" in text
    [image] = [p for p in single.walk() if p.get_content_type() == "image/png"]
    assert png_size(image.get_content()) == (480, 160)
    assert f"cid:{image['Content-ID'].strip('<>')}" in single.get_body(("html",)).get_content()  # type: ignore[union-attr]

    digests = [m for m in messages if "MAIL-B" in str(m["Subject"])]
    assert sorted(str(m["To"]) for m in digests) == sorted([ops, audit])
    english = next(m for m in digests if m["To"] == audit)
    highest = max(
        (a["severity"] for a in alerts if a["outlet_id"] == "MAIL-B"), key=SEVERITIES.index
    )
    assert english["Subject"] == f"[settleguard] Outlet MAIL-B · 3 alerts · highest {highest}"
    assert not any("MAIL-C" in str(m["Subject"]) for m in messages)


def test_smtp_outage_mid_stream_loses_and_repeats_nothing(
    mail_env: dict[str, str], tmp_path: Path
) -> None:
    """The SMTP server stops mid-stream and comes back: the sink retries with backoff
    (counted), and every routed alert is mailed exactly once."""
    port, maildir = free_port(), tmp_path / "maildir"
    env = mail_env | {"SETTLEGUARD_SMTP_HOST": "127.0.0.1", "SETTLEGUARD_SMTP_PORT": str(port)}
    ops = "ops@example.com"
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"mail:\n  receivers: {{ops: {{to: [{ops}]}}}}\n  routes:\n    - receivers: [ops]\n"
        "  grouping: {group_wait: 1s, group_interval: 1s, repeat_interval: 1m}\n",
        encoding="utf-8",
    )
    run_settleguard(["topics", "create"], env)
    bootstrap, topic = env["SETTLEGUARD_KAFKA_BOOTSTRAP"], env["SETTLEGUARD_SETTLEMENTS_TOPIC"]
    web_port = int(env["SETTLEGUARD_WEB_PORT"])
    before = [line for n in range(4) for line in duplicates(f"UP-{n}", "华东-上海", 2)]
    during = [line for n in range(6) for line in duplicates(f"DOWN-{n}", "华东-上海", 2)]
    log = (tmp_path / "worker.log").open("wb")
    worker = start_worker(env, log, "--config", str(rules))
    try:
        with private_smtp(port, maildir):
            asyncio.run(publish(bootstrap, topic, before))
            wait_for(lambda: len(mailed(mails_to(maildir / "new", {ops}))) >= 8, 120, worker)
        asyncio.run(publish(bootstrap, topic, during))
        wait_for(
            lambda: total(scrape(web_port), "settleguard_mails_retried_total") >= 2, 60, worker
        )
        with private_smtp(port, maildir):
            wait_for(lambda: len(mailed(mails_to(maildir / "new", {ops}))) >= 20, 120, worker)
            time.sleep(4)  # anything more would be a duplicate: give it time to show
        samples = scrape(web_port)
    finally:
        stop(worker)
    expected = expected_mails(env, rules)
    assert len(expected) == 10 * 2
    assert mailed(mails_to(maildir / "new", {ops})) == expected
    assert total(samples, "settleguard_sink_failures_total") >= 2
    assert total(samples, "settleguard_mails_sent_total") == len(mails_to(maildir / "new", {ops}))
