#!/usr/bin/env bash
# Idempotent environment setup: a virtual environment in .venv with the exact versions pinned in
# constraints.txt and this package installed in editable mode.
#   scripts/setup.sh lab    what JupyterLab needs
#   scripts/setup.sh test   that, plus test and lint tools
# For 'test' it also installs Debian's chromium and openssh-server when they are missing (as
# root; the system sshd stays off).
# Re-running is cheap: a stamp keyed on constraints.txt and pyproject.toml skips pip when nothing
# changed; one on labextension/package-lock.json skips npm ci, and one on the extension's sources
# skips its rebuild. Building the JupyterLab extension needs Node.js and npm.
# Setup never changes tracked files: in a git checkout it fails, naming them, if it did.
set -euo pipefail
cd "$(dirname "$0")/.."

# What git sees in the working tree: its status lines with each listed file's size and time of
# last change, so a file a developer had already edited still counts when setup writes to it.
tree_state() {
  git status --porcelain=v1 --untracked-files=all | while IFS= read -r line; do
    path=${line:3}
    printf '%s %s\n' "$line" "$(stat -c '%s %y' -- "${path##* -> }" 2>/dev/null || true)"
  done
}
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  tree_before=$(tree_state)
  check_tree() {
    local changed
    changed=$(diff <(printf '%s\n' "$tree_before") <(tree_state) | sed -n 's/^[<>] ...//p' |
      cut -d' ' -f1 | sort -u || true)
    if [ -n "$changed" ]; then
      echo "setup: these files of the checkout changed while setup ran; installing must leave" \
        "them as they were (see git diff):" >&2
      printf '  %s\n' $changed >&2
      exit 1
    fi
  }
  trap 'status=$?; if [ "$status" = 0 ]; then check_tree; fi' EXIT
fi

purpose=${1:-lab}
python=${PYTHON:-python3}
venv=${VENV:-.venv}

case "$purpose" in
  lab) extras="cpu" ;;
  test) extras="cpu,ray,test,dev" ;;
  *) echo "usage: $0 lab|test" >&2; exit 2 ;;
esac

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv"
  "$python" -m venv "$venv"
fi

# The JupyterLab extension's node modules, exactly as labextension/package-lock.json pins them.
# This comes before the pip install, whose build hook runs npm in labextension/. npm ci empties
# node_modules first, so the stamp inside it goes whenever the lockfile changes.
if ! command -v npm >/dev/null; then
  echo "setup: building the JupyterLab extension needs Node.js (>= 20.19) and npm" >&2
  exit 1
fi
npm_stamp="labextension/node_modules/.installed-$(sha256sum <labextension/package-lock.json | cut -c1-16)"
if [ ! -f "$npm_stamp" ]; then
  echo "setup: installing the JupyterLab extension's node modules (half a minute)"
  # exactly what the lockfile says; npm ci fails, and changes nothing, when package.json and the
  # lockfile disagree: update the lockfile with npm install in labextension/ and commit it
  (cd labextension && npm ci --no-audit --no-fund --loglevel=error)
  touch "$npm_stamp"
fi
# the build hook's npm script calls jupyter-builder from the environment being installed into
PATH="$(cd "$venv/bin" && pwd):$PATH"
export PATH
# The build hook runs "npm install" before building; node_modules is already as the lockfile
# says, and npm must not write the lockfile back (npm 10, Node 20's, drops its "libc" fields).
export npm_config_save=false

# The extension's sources: a change rebuilds it and copies it into the environment (below).
lab_digest=$(find labextension/src labextension/style labextension/package.json \
    labextension/package-lock.json labextension/tsconfig.json labextension/install.json \
    -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
lab_stamp="$venv/.labextension-$lab_digest"

digest=$(cat constraints.txt pyproject.toml | sha256sum | cut -c1-16)
stamp="$venv/.installed-$purpose-$digest"
if [ ! -f "$stamp" ]; then
  echo "setup: installing pinned dependencies for '$purpose' (torch and ultralytics take a minute)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$extras]"
  rm -f "$venv"/.installed-"$purpose"-* "$venv"/.labextension-*
  touch "$stamp" "$lab_stamp"
else
  echo "setup: $venv is up to date for '$purpose'"
fi

# An editable install copies the built extension into $venv/share/jupyter/labextensions: build
# and copy again when its sources changed since.
if [ ! -f "$lab_stamp" ]; then
  echo "setup: rebuilding the JupyterLab extension"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
  rm -f "$venv"/.labextension-*
  touch "$lab_stamp"
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

# The SSH tests run Debian's OpenSSH server themselves (as a throwaway user, on a loopback port).
# Installing it must not leave a system sshd running: /etc/ssh/sshd_not_to_be_run, which Debian's
# ssh.service, ssh.socket and init script all honour, is created first, so the package's
# postinst starts nothing and the system service stays off, now and after a reboot. (A machine
# that already has /usr/sbin/sshd is left as it is.)
if [ "$purpose" = test ] && [ ! -x /usr/sbin/sshd ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian's openssh-server for the SSH tests (its system service stays off)"
    mkdir -p /etc/ssh
    touch /etc/ssh/sshd_not_to_be_run
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
  else
    echo "setup: the SSH tests need root and Debian's openssh-server; they are skipped" >&2
  fi
fi
