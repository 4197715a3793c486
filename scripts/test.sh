#!/usr/bin/env bash
# Lint, type-check and run the whole test suite (slow and browser tests included).
# Extra arguments go to pytest, e.g. scripts/test.sh -k jobs
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
mkdir -p artifacts
"$venv/bin/ruff" check jupyter_yolo tests
"$venv/bin/mypy"
exec "$venv/bin/pytest" -m "not benchmarks" "$@"
