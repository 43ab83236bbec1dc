#!/usr/bin/env bash
# Build the compiled detection core (setup.py with SETTLEGUARD_COMPILE=1: models/ through
# mypyc) as a wheel and unpack it into DIR, default var/compiled. Run anything against it
# with PYTHONPATH=DIR: its modules come before the editable install's plain Python ones.
# Nothing is rebuilt when DIR was built from the same sources.
#
#   scripts/build_compiled.sh [DIR]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/var/compiled}
PYTHON=${SETTLEGUARD_PYTHON:-$ROOT/.venv/bin/python}  # the interpreter that will run it

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi

cd "$ROOT"
# Every file the wheel is built from: the compiled models/ and the plain packages beside it.
sources=$( (cat pyproject.toml setup.py
  find models stream alerts config -type f -not -name '*.so' -not -path '*/__pycache__/*' -print0 \
    | sort -z | xargs -0 cat) | sha256sum | cut -d' ' -f1)
if [[ -f $OUT/.sources && $(cat "$OUT/.sources") == "$sources" ]]; then
  echo "compiled build in $OUT is up to date"
  exit 0
fi

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
echo "compiling models/ with mypyc (about a minute) ..."
SETTLEGUARD_COMPILE=1 "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$ROOT"
rm -rf "$OUT"
mkdir -p "$OUT"
"$PYTHON" -m zipfile -e "$wheels"/settleguard-*.whl "$OUT"
echo "$sources" > "$OUT/.sources"
rm -rf "$ROOT/build"  # setuptools' intermediate files
echo "compiled build ready: PYTHONPATH=$OUT"
