"""Shared fixtures: real local services started by the project's own script, and helpers
to run settleguard commands as subprocesses the way an operator would."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests are deterministic (the same examples on every run, so CI cannot fail by
# chance) and have no per-example deadline (a loaded CI machine is not a failure).
settings.register_profile("settleguard", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("settleguard")

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "scripts" / "services.sh"
SETTLEGUARD = [str(Path(sys.executable).parent / "settleguard")]


def start_service(name: str) -> dict[str, str]:
    """Start ``name`` with scripts/services.sh (idempotent) and return its SETTLEGUARD_* env."""
    started = subprocess.run(
        ["bash", str(SERVICES), "start", name], capture_output=True, text=True, timeout=600
    )
    if started.returncode != 0:
        pytest.fail(f"scripts/services.sh start {name} failed:\n{started.stdout}{started.stderr}")
    printed = subprocess.run(
        ["bash", str(SERVICES), "env"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    env = {}
    for line in printed.splitlines():
        words = shlex.split(line)  # the script quotes values for `eval`
        if len(words) == 2 and words[0] == "export":
            key, _, value = words[1].partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of a real Kafka broker (started here unless one is configured)."""
    return start_service("kafka")["SETTLEGUARD_KAFKA_BOOTSTRAP"]


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real Redis server (started here unless one is configured)."""
    return start_service("redis")["SETTLEGUARD_REDIS_URL"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def isolated_env(kafka_bootstrap: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """SETTLEGUARD_* env with topics and consumer group unique to one test."""
    suffix = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "SETTLEGUARD_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SETTLEGUARD_APP_ID": f"settleguard-test-{suffix}",
        "SETTLEGUARD_ORDERS_TOPIC": f"test-{suffix}.orders",
        "SETTLEGUARD_SETTLEMENTS_TOPIC": f"test-{suffix}.settlements",
        "SETTLEGUARD_DEAD_LETTER_TOPIC": f"test-{suffix}.dead-letter",
        "SETTLEGUARD_ALERTS_TOPIC": f"test-{suffix}.alerts",
        "SETTLEGUARD_REKEY_TOPIC": f"test-{suffix}.by-outlet",
        "SETTLEGUARD_RULES_TOPIC": f"test-{suffix}.rules",
        "SETTLEGUARD_VERDICTS_TOPIC": f"test-{suffix}.verdicts",
        "SETTLEGUARD_RATINGS_TOPIC": f"test-{suffix}.ratings",
        "SETTLEGUARD_REDIS_KEY_PREFIX": f"test-{suffix}:",
        "SETTLEGUARD_REVIEW_STREAM": f"test-{suffix}:review",
        "SETTLEGUARD_VERDICTS_STREAM": f"test-{suffix}:verdicts",
        "SETTLEGUARD_WEB_PORT": str(free_port()),
        "SETTLEGUARD_DATA_DIR": str(tmp_path / "worker"),
        "PYTHONWARNINGS": "ignore",
    }
    yield env


def run_settleguard(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    """Run ``settleguard ARGS`` to completion; fail the test with its output if it fails."""
    done = subprocess.run(
        [*SETTLEGUARD, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        pytest.fail(f"settleguard {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout + done.stderr
