"""Installing never changes the checkout.

* The JupyterLab extension's lockfile installs as it is with ``npm ci`` (it is in sync with
  package.json and holds every platform's optional packages), so setup never needs ``npm install``,
  which would rewrite it.
* scripts/setup.sh fails, naming the files, when installing changed any file of the checkout, and
  not for a developer's own edits. It runs here for real in a scratch git checkout, with stand-ins
  for python and npm that do what pip's build hook and ``npm ci`` would do to the files.
* In CI (``CI=true``, a fresh clone) the checkout is exactly as committed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO_ROOT

LABEXTENSION = REPO_ROOT / "labextension"

FAKE_PYTHON = """#!/bin/sh
# python -m venv DIR: DIR/bin/python is this script; python -m pip ...: runs $FAKE_PIP
if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0; fi
if [ "$1 $2" = "-m pip" ]; then exec sh -c "${FAKE_PIP:-true}"; fi
exit 2
"""

FAKE_NPM = """#!/bin/sh
# npm ci: an empty node_modules, or a failure with FAKE_NPM_CI_FAILS=1
echo "npm $*" >> "$FAKE_NPM_LOG"
if [ "$1" = ci ]; then
  [ "${FAKE_NPM_CI_FAILS:-}" = 1 ] && exit 1
  rm -rf node_modules && mkdir node_modules && exit 0
fi
exit 3
"""


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A committed scratch checkout holding what scripts/setup.sh reads."""
    repo = tmp_path / "repo"
    for name in (
        "scripts/setup.sh",
        ".gitignore",
        "constraints.txt",
        "pyproject.toml",
        "labextension/package.json",
        "labextension/package-lock.json",
        "labextension/tsconfig.json",
        "labextension/install.json",
    ):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, repo / name)
    for folder in ("labextension/src", "labextension/style"):
        shutil.copytree(REPO_ROOT / folder, repo / folder)
    (repo / "README.md").write_text("scratch\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(
        repo,
        "-c",
        "user.name=test",
        "-c",
        "user.email=test@example.invalid",
        "commit",
        "-qm",
        "scratch",
    )
    return repo


def setup(repo: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the checkout's scripts/setup.sh lab with the stand-ins."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    write_script(bin_dir / "npm", FAKE_NPM)
    python = write_script(tmp_path / "fake-python", FAKE_PYTHON)
    full_env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHON": str(python),
        "VENV": ".venv",
        "FAKE_NPM_LOG": str(tmp_path / "npm.log"),
        **env,
    }
    return subprocess.run(
        ["bash", "scripts/setup.sh", "lab"],
        cwd=repo,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_lockfile_installs_as_it_is(tmp_path: Path) -> None:
    """npm ci accepts the committed lockfile: no platform's optional package is missing."""
    npm = shutil.which("npm")
    assert npm is not None, "make test builds the extension with npm: it must be installed"
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(LABEXTENSION / name, tmp_path / name)
    done = subprocess.run(
        [npm, "ci", "--dry-run", "--offline", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "npm_config_cache": str(tmp_path / "npm-cache")},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "package-lock.json").read_bytes() == (
        LABEXTENSION / "package-lock.json"
    ).read_bytes()


def test_setup_leaves_a_checkout_as_it_was(checkout: Path, tmp_path: Path) -> None:
    (checkout / "README.md").write_text("a developer's edit\n")  # not setup's doing: allowed
    done = setup(checkout, tmp_path, FAKE_PIP='echo "$npm_config_save" > .venv/npm-save')
    assert done.returncode == 0, done.stderr
    assert git(checkout, "status", "--porcelain", "--untracked-files=all") == " M README.md\n"
    # pip's build hook runs "npm install", which must not write the lockfile back
    assert (checkout / ".venv" / "npm-save").read_text() == "false\n"
    assert (tmp_path / "npm.log").read_text().splitlines() == [
        "npm ci --no-audit --no-fund --loglevel=error"
    ]

    again = setup(checkout, tmp_path, FAKE_PIP="exit 9")
    assert again.returncode == 0, again.stderr  # up to date: neither pip nor npm runs
    assert "is up to date" in again.stdout


@pytest.mark.parametrize(
    "change",
    [
        "echo '{}' > labextension/package-lock.json",  # what npm install did to the lockfile
        "echo more >> README.md",  # a file the developer had edited already
        "touch labextension/new-file",
    ],
)
def test_setup_fails_and_names_what_installing_changed(
    checkout: Path, tmp_path: Path, change: str
) -> None:
    (checkout / "README.md").write_text("a developer's edit\n")
    done = setup(checkout, tmp_path, FAKE_PIP=change)
    assert done.returncode != 0
    changed = change.rsplit(maxsplit=1)[-1]
    assert "changed while setup ran" in done.stderr and f"  {changed}\n" in done.stderr, done.stderr


def test_setup_never_falls_back_to_npm_install(checkout: Path, tmp_path: Path) -> None:
    done = setup(checkout, tmp_path, FAKE_NPM_CI_FAILS="1")
    assert done.returncode != 0
    assert (tmp_path / "npm.log").read_text().splitlines() == [
        "npm ci --no-audit --no-fund --loglevel=error"
    ]
    assert git(checkout, "status", "--porcelain", "--untracked-files=all") == ""


def test_ci_checkout_is_as_committed() -> None:
    """In CI's fresh clone, setup and the tests run so far changed nothing that git tracks."""
    if os.environ.get("CI") != "true":
        pytest.skip("a developer's checkout has edits of its own; CI=true checks a fresh clone")
    status = git(REPO_ROOT, "status", "--porcelain", "--untracked-files=no")
    assert status == "", f"the checkout differs from its commit:\n{status}"
