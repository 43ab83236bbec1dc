"""Build hook: the C tree walk of the isolation forest (models/_treewalk.c, always), and
the optional compiled build of the detection core.

``SETTLEGUARD_COMPILE=1 pip install .`` (or ``scripts/build_compiled.sh``) compiles every
module of ``models/`` to a C extension with mypyc: the same source, about twice as fast
per event (README, "Speed"). Without the variable the package installs as plain Python,
which is what development uses: an edited ``.py`` file is what runs.
"""

import os
from pathlib import Path

from setuptools import Extension, setup


def compiled_modules() -> list:
    """The mypyc extensions of models/, or none unless SETTLEGUARD_COMPILE=1."""
    if os.environ.get("SETTLEGUARD_COMPILE") != "1":
        return []
    from mypyc.build import mypycify

    sources = sorted(
        str(path) for path in Path("models").rglob("*.py") if path.name != "__init__.py"
    )
    # Its own mypy options, not pyproject's: the isolated build environment has none of
    # the project's dependencies (nor the pydantic plugin), so their types are Any here.
    options = ["--config-file=", "--ignore-missing-imports", "--follow-imports=silent"]
    return mypycify([*options, *sources], opt_level="3")


TREE_WALK = Extension("models._treewalk", ["models/_treewalk.c"], extra_compile_args=["-O3"])

setup(ext_modules=[TREE_WALK, *compiled_modules()])
