"""The compiled build of models/ for the benchmarks (scripts/build_compiled.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ROOT / "var" / "compiled"


def compiled_pythonpath() -> str:
    """Build var/compiled when it is missing or stale; the PYTHONPATH that runs it."""
    subprocess.run([str(ROOT / "scripts" / "build_compiled.sh"), str(COMPILED)], check=True)
    return os.pathsep.join([str(COMPILED), str(ROOT)])
