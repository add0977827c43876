#!/usr/bin/env bash
# The Python package's tests, as CI runs them: a fresh venv, the package installed from the
# checkout with one command (pip builds it with maturin, PEP 517), the test tools from PyPI,
# then pytest. The Rust build goes to $CARGO_TARGET_DIR when set (maturin honours it), else to
# the workspace's target/. Extra arguments go to pytest (e.g. -k leak).
#
#   python/run-tests.sh            # from anywhere; PYTHON=python3.12 to choose the interpreter
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
venv="$(mktemp -d "${TMPDIR:-/tmp}/msgraph-notify-py.XXXXXX")"
trap 'rm -rf "$venv"' EXIT
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/../target}"

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "$here"
"$venv/bin/python" -m pip install --quiet pytest fastapi httpx uvicorn mypy azure-functions
cd "$here/tests"  # not python/: its msgraph_notify/ folder would shadow the installed package
"$venv/bin/python" -m pytest -q . "$@"
