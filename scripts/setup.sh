#!/usr/bin/env bash
# Idempotent environment setup: a virtual environment in .venv with the exact versions pinned in
# constraints.txt and this package installed in editable mode.
#   scripts/setup.sh lab    what JupyterLab needs
#   scripts/setup.sh test   that, plus test and lint tools
# For 'test' it also installs Debian's chromium when it is missing (as root).
# Re-running is cheap: a stamp keyed on constraints.txt and pyproject.toml skips pip when nothing
# changed.
set -euo pipefail
cd "$(dirname "$0")/.."

purpose=${1:-lab}
python=${PYTHON:-python3}
venv=${VENV:-.venv}

case "$purpose" in
  lab) extras="cpu" ;;
  test) extras="cpu,test,dev" ;;
  *) echo "usage: $0 lab|test" >&2; exit 2 ;;
esac

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv"
  "$python" -m venv "$venv"
fi

digest=$(cat constraints.txt pyproject.toml | sha256sum | cut -c1-16)
stamp="$venv/.installed-$purpose-$digest"
if [ ! -f "$stamp" ]; then
  echo "setup: installing pinned dependencies for '$purpose' (torch and ultralytics take a minute)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$extras]"
  rm -f "$venv"/.installed-"$purpose"-*
  touch "$stamp"
else
  echo "setup: $venv is up to date for '$purpose'"
fi

# Browser tests drive Debian's Chromium (Playwright cannot download its own browser here).
if [ "$purpose" = test ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian's chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: the browser tests need Debian's chromium: sudo apt-get install chromium" >&2
    exit 1
  fi
fi
