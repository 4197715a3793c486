"""The wheel carries the prebuilt JupyterLab extension: installing it needs no Node.js.

The wheel is built from this checkout (the build hook runs npm only when labextension/ changed
since the last build) and installed with --no-deps into a fresh virtual environment whose PATH
holds no node. Its other dependencies (jupyterlab ...) come from the development environment
through a .pth file, so nothing is downloaded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO_ROOT

EXTENSION = "jupyter-yolo"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(
    args: list[str], env: dict[str, str] | None = None, cwd: Path = REPO_ROOT, timeout: float = 600
) -> str:
    result = subprocess.run(
        args,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = ANSI.sub("", result.stdout + result.stderr)
    assert result.returncode == 0, f"{args} failed:\n{output[-4000:]}"
    return output


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built without isolation by this environment's hatchling and build hook."""
    dist = tmp_path_factory.mktemp("dist")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), "."],
        env=env,
    )
    (path,) = dist.glob("jupyter_yolo-*.whl")
    return path


@pytest.mark.slow
def test_wheel_holds_the_built_extension_and_the_notebooks(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    data = f"jupyter_yolo-0.1.0.data/data/share/jupyter/labextensions/{EXTENSION}"
    assert f"{data}/package.json" in names
    assert f"{data}/install.json" in names
    assert f"{data}/static/style.js" in names
    assert any(re.fullmatch(rf"{data}/static/remoteEntry\.\w+\.js", n) for n in names)
    assert "jupyter_yolo/notebooks/quickstart.ipynb" in names
    assert not [n for n in names if "node_modules" in n or n.endswith(".ts")]


@pytest.mark.slow
def test_wheel_installs_an_enabled_extension_without_node(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "env"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = str(venv / "bin" / "python")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", str(wheel)])
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    # jupyterlab and the rest from the development environment (its .pth files are not read)
    Path(purelib.strip(), "dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"])

    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": str(venv / "bin"),  # no node, no npm
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }
    assert shutil.which("node", path=env["PATH"]) is None
    # outside the checkout, so that its jupyter_yolo is not importable from the current folder
    listing = run([python, "-m", "jupyterlab.labextensions", "list"], env=env, cwd=home)
    lines = listing.splitlines()
    prefix = lines.index(str(venv / "share" / "jupyter" / "labextensions"))
    ours = [line.split() for line in lines[prefix + 1 :] if line.split()[:1] == [EXTENSION]]
    assert ours == [[EXTENSION, "v0.1.0", "enabled", "OK", "(python,", "jupyter-yolo)"]], listing

    servers = run(
        [python, "-m", "jupyter_server.extension.serverextension", "list"], env=env, cwd=home
    )
    assert re.search(r"jupyter_yolo\s+enabled", servers), servers

    notebook = run(
        [
            python,
            "-c",
            "from jupyter_yolo.notebooks import shipped_notebook as s; print(s('quickstart'))",
        ],
        env=env,
        cwd=home,
    ).strip()
    assert Path(notebook).is_relative_to(purelib.strip()), notebook
