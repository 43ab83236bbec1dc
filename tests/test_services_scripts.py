"""scripts/services.sh: its command line, its env output, and a real Redis start/stop cycle."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "scripts" / "services.sh"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SETTLEGUARD_")}
    return subprocess.run(
        ["bash", str(SERVICES), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_help_lists_the_commands() -> None:
    """--help names every command and service."""
    done = run("--help")
    assert done.returncode == 0
    for word in ("start", "stop", "status", "env", "kafka", "redis", "prometheus", "smtp"):
        assert word in done.stdout


def test_unknown_command_or_service_fails_clearly() -> None:
    """A typo in a command or service name fails and names the typo."""
    bad_cmd = run("frobnicate")
    assert bad_cmd.returncode != 0
    assert "unknown command 'frobnicate'" in bad_cmd.stderr
    bad_svc = run("start", "kafka", "zookeeper")
    assert bad_svc.returncode != 0
    assert "unknown service 'zookeeper'" in bad_svc.stderr


def test_env_prints_own_addresses_for_the_configured_ports() -> None:
    """env prints our own addresses, following the configured ports."""
    done = run(
        "env",
        env={
            "SETTLEGUARD_KAFKA_PORT": "19092",
            "SETTLEGUARD_REDIS_PORT": "16379",
            "SETTLEGUARD_PROMETHEUS_PORT": "19090",
            "SETTLEGUARD_SMTP_PORT": "18025",
            "SETTLEGUARD_VAR": "/srv/sg",
        },
    )
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        "export SETTLEGUARD_KAFKA_BOOTSTRAP=127.0.0.1:19092",
        "export SETTLEGUARD_REDIS_URL=redis://127.0.0.1:16379/0",
        "export SETTLEGUARD_PROMETHEUS_URL=http://127.0.0.1:19090",
        "export SETTLEGUARD_SMTP_HOST=127.0.0.1",
        "export SETTLEGUARD_SMTP_PORT=18025",
        "export SETTLEGUARD_SMTP_MAILDIR=/srv/sg/services/smtp/maildir/new",
    ]


def test_env_echoes_external_servers_unchanged() -> None:
    """An external Kafka given by the user is echoed back, quoted for eval."""
    done = run("env", env={"SETTLEGUARD_KAFKA_BOOTSTRAP": "broker-a:9092,broker-b:9092"})
    assert "export SETTLEGUARD_KAFKA_BOOTSTRAP=broker-a:9092\\,broker-b:9092" in done.stdout


def test_unreachable_external_server_is_an_error(tmp_path: Path) -> None:
    """Pointing at an external server that does not answer is an error, not a silent start."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = run(
        "start",
        "redis",
        env={"SETTLEGUARD_VAR": str(tmp_path), "SETTLEGUARD_REDIS_URL": url},
    )
    assert done.returncode != 0
    assert f"SETTLEGUARD_REDIS_URL={url} does not answer" in done.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_is_clean() -> None:
    """The script passes shellcheck."""
    done = subprocess.run(["shellcheck", str(SERVICES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout


@pytest.mark.e2e
def test_redis_start_is_idempotent_and_persists(tmp_path: Path) -> None:
    """Redis starts once, a second start is a no-op, and data survives stop/start."""
    env = {"SETTLEGUARD_VAR": str(tmp_path), "SETTLEGUARD_REDIS_PORT": str(free_port())}
    port = env["SETTLEGUARD_REDIS_PORT"]
    try:
        first = run("start", "redis", env=env)
        assert first.returncode == 0, first.stderr
        assert "redis: started" in first.stdout
        again = run("start", "redis", env=env)
        assert again.returncode == 0 and "already running" in again.stdout
        assert run("status", "redis", env=env).returncode == 0

        cli = ["redis-cli", "-p", port]
        subprocess.run([*cli, "set", "sg:test", "kept"], check=True, capture_output=True)
        assert "redis: stopped" in run("stop", "redis", env=env).stdout
        assert run("status", "redis", env=env).returncode == 3
        assert "not running" in run("stop", "redis", env=env).stdout

        assert run("start", "redis", env=env).returncode == 0
        got = subprocess.run([*cli, "get", "sg:test"], capture_output=True, text=True)
        assert got.stdout.strip() == "kept"  # appendonly: the key survived the restart
    finally:
        run("stop", "redis", env=env)
