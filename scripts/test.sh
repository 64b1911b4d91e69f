#!/usr/bin/env bash
# Create .venv (if needed), install bertkit with its test extras (torch pinned to the 2.13.0
# CPU wheel) and run the test suite. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0" -e ".[test]"
# One style across the tree (config in pyproject.toml): lint, then the formatter in check mode.
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
# pytest exits 5 when no test ran: that is a failure here, as is any failed test.
exec .venv/bin/python -m pytest -q "$@"
