#!/usr/bin/env bash
# Lint, check formatting, type-check (Python and TypeScript) and run the whole test suite (slow and browser tests
# included).
# Extra arguments go to pytest, e.g. scripts/test.sh -k jobs
# With CI=true (a fresh clone) the checkout must be exactly as committed before the suite (setup
# changed nothing) and after it (no test did); a developer's checkout has edits of its own and is
# not checked.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}

as_committed() {
  local changed
  changed=$(git status --porcelain --untracked-files=all)
  if [ -n "$changed" ]; then
    echo "test: the checkout differs from its commit after $1 (git status --porcelain):" >&2
    echo "$changed" >&2
    exit 1
  fi
}

if [ "${CI:-}" = true ]; then as_committed "setup"; fi
mkdir -p artifacts
"$venv/bin/ruff" check jupyter_yolo tests bench
"$venv/bin/ruff" format --check jupyter_yolo tests bench
"$venv/bin/mypy"
# the JupyterLab extension: ESLint, Prettier and the TypeScript compiler (strict, no emit)
(cd labextension && npm run --silent lint && npm run --silent typecheck)
# the slowest tests in the log, and every test's time in artifacts/ (kept when the log is not)
"$venv/bin/pytest" -m "not benchmarks" --durations=40 --junit-xml=artifacts/pytest-junit.xml "$@"
if [ "${CI:-}" = true ]; then as_committed "the test suite"; fi
