"""SETTLEGUARD_PIN_CPUS: the worker keeps its first CPU, the detection process gets the
others; with one CPU nothing is pinned. Run in a child process, not to pin the tests."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "import os; from stream.cpus import pin_worker; rest = pin_worker(); "
    "print(sorted(os.sched_getaffinity(0)), None if rest is None else sorted(rest))"
)


def probe(cpus: set[int]) -> str:
    return subprocess.run(
        [sys.executable, "-c", f"import os; os.sched_setaffinity(0, {cpus!r}); {PROBE}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_the_worker_keeps_its_first_cpu_and_gives_the_others_to_detection() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    assert probe(set(allowed)) == f"{allowed[:1]} {allowed[1:]}"


def test_with_one_cpu_nothing_is_pinned() -> None:
    only = min(os.sched_getaffinity(0))
    assert probe({only}) == f"[{only}] None"
