#!/usr/bin/env bash
# Lint, type-check (Python and TypeScript) and run the whole test suite (slow and browser tests
# included).
# Extra arguments go to pytest, e.g. scripts/test.sh -k jobs
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
mkdir -p artifacts
"$venv/bin/ruff" check jupyter_yolo tests bench
"$venv/bin/mypy"
# the JupyterLab extension: ESLint, Prettier and the TypeScript compiler (strict, no emit)
(cd labextension && npm run --silent lint && npm run --silent typecheck)
exec "$venv/bin/pytest" -m "not benchmarks" "$@"
