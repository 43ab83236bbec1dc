"""The compiled build (scripts/build_compiled.sh: models/ through mypyc, what the image
runs) behaves exactly as the plain Python it is compiled from: replay writes the same
alerts and dead letters byte for byte, and the detection core's unit tests pass on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ROOT / "var" / "compiled"
UNIT_TESTS = ["test_engine.py", "test_feedback.py", "test_iforest.py", "test_calibration.py"]
"""The core's unit tests run on the compiled build. Not the detector contract test: its
spies subclass the detectors, which compiled classes do not allow."""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def compiled() -> Path:
    """var/compiled, built (about a minute) unless it is up to date with the sources."""
    subprocess.run([str(ROOT / "scripts" / "build_compiled.sh"), str(COMPILED)], check=True)
    return COMPILED


def python(build: Path | None, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` run outside the checkout, importing ``build`` first when given."""
    path = [str(build)] if build is not None else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(ROOT)])}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_the_compiled_build_runs_compiled_modules(compiled: Path, tmp_path: Path) -> None:
    code = (
        "import models.engine, models.stats; print(models.engine.__file__, models.stats.__file__)"
    )
    result = python(compiled, ["-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    files = result.stdout.split()
    assert files and all(name.startswith(str(compiled)) and name.endswith(".so") for name in files)


def test_replay_writes_the_same_bytes_on_both_builds(compiled: Path, tmp_path: Path) -> None:
    cli = "import sys; from stream.cli import main; sys.exit(main())"
    stream = tmp_path / "stream"
    simulate = ["simulate", "--outlets", "60", "--days", "21", "--seed", "11"]
    result = python(
        None, ["-c", cli, *simulate, "--malformed", "0.001", "--out", str(stream)], tmp_path
    )
    assert result.returncode == 0, result.stderr
    outputs = {}
    for name, build in (("plain", None), ("compiled", compiled)):
        alerts, dead = tmp_path / f"{name}.alerts", tmp_path / f"{name}.dead"
        args = [str(stream / "events.jsonl"), "--alerts", str(alerts), "--dead-letter", str(dead)]
        result = python(build, ["-c", cli, "replay", *args], tmp_path)
        assert result.returncode == 0, result.stderr
        outputs[name] = (alerts.read_bytes(), dead.read_bytes())
    assert outputs["plain"][0].count(b"\n") > 20, "too few alerts to compare"
    assert outputs["plain"][1], "no dead letters to compare"
    assert outputs["compiled"] == outputs["plain"]


def test_the_core_unit_tests_pass_on_the_compiled_build(compiled: Path, tmp_path: Path) -> None:
    tests = [str(ROOT / "tests" / name) for name in UNIT_TESTS]
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT), *tests]
    result = python(compiled, args, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
