"""Deployment on Ray: the container's executor settings and the images as Ray nodes.

``YOLO_EXECUTOR``/``YOLO_RAY_ADDRESS``/``YOLO_RAY_PYTHON`` become the server's ``YoloApp``
settings (bad values refused with the fix, credentials never echoed); every Dockerfile installs
the ``ray`` extra with the pinned Ray and what KubeRay needs of a Ray image. The manifests and
the compose profile are checked in test_ray_manifests.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jupyter_server.serverapp import ServerApp
from traitlets.config import Config

from jupyter_yolo.app import YoloApp
from jupyter_yolo.container import ContainerError
from jupyter_yolo.container.config import ContainerConfig
from jupyter_yolo.container.supervisor import lab_arguments
from jupyter_yolo.contract.executors import RAY_VERSION

from .conftest import REPO_ROOT
from .test_container_contract import assignments, parse_dockerfile, pinned

DOCKER = REPO_ROOT / "docker"


def server_config(args: list[str]) -> Config:
    """The traitlets config the server builds from its command line."""
    server = ServerApp()
    server.parse_command_line(args)
    return server.config


def _config(tmp_path: Path, **env: str) -> ContainerConfig:
    return ContainerConfig.from_environ({"YOLO_WORKSPACE": str(tmp_path), **env})


# --------------------------------------------------------------------------- the settings


def test_ray_settings_reach_the_server_as_yoloapp_arguments(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        YOLO_EXECUTOR=" Ray ",
        YOLO_RAY_ADDRESS="http://ray-head:8265/",
        YOLO_RAY_PYTHON="/opt/venv/bin/python",
    )
    assert (config.executor, config.ray_address, config.ray_python) == (
        "ray",
        "http://ray-head:8265",
        "/opt/venv/bin/python",
    )
    args = lab_arguments(config, [])
    assert {
        "--YoloApp.executor=ray",
        "--YoloApp.ray_address=http://ray-head:8265",
        "--YoloApp.ray_python=/opt/venv/bin/python",
    } <= set(args)
    assert args[-1] == "--ServerApp.disable_check_xsrf=False"
    yolo = server_config(args)["YoloApp"]
    assert (yolo["executor"], yolo["ray_address"], yolo["ray_python"]) == (
        "ray",
        "http://ray-head:8265",
        "/opt/venv/bin/python",
    )
    app = YoloApp(config=server_config(args))
    assert (app.executor, app.ray_address, app.ray_python) == (
        "ray",
        "http://ray-head:8265",
        "/opt/venv/bin/python",
    )


def test_unset_settings_leave_the_server_defaults(tmp_path: Path) -> None:
    for env in ({}, {"YOLO_EXECUTOR": " ", "YOLO_RAY_ADDRESS": "", "YOLO_RAY_PYTHON": " "}):
        config = _config(tmp_path, **env)
        assert (config.executor, config.ray_address, config.ray_python) == (None, None, None)
        assert not [a for a in lab_arguments(config, []) if "executor" in a or "ray_" in a]
        app = YoloApp(config=server_config(lab_arguments(config, [])))
        assert (app.executor, app.ray_address, app.ray_python) == ("local", "", "python3")
    # local with an address: the server runs jobs locally and offers Ray per job
    both = _config(tmp_path, YOLO_EXECUTOR="local", YOLO_RAY_ADDRESS="https://ray.example:443")
    assert {"--YoloApp.executor=local", "--YoloApp.ray_address=https://ray.example:443"} <= set(
        lab_arguments(both, [])
    )


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"YOLO_EXECUTOR": "kubernetes"}, "YOLO_EXECUTOR must be local (jobs run in this"),
        ({"YOLO_EXECUTOR": "ray"}, "YOLO_EXECUTOR=ray needs YOLO_RAY_ADDRESS"),
        ({"YOLO_EXECUTOR": "ray", "YOLO_RAY_ADDRESS": "  "}, "needs YOLO_RAY_ADDRESS"),
        ({"YOLO_RAY_ADDRESS": "ray-head:6379"}, "not the GCS address host:6379"),
        ({"YOLO_RAY_ADDRESS": "ray://ray-head:10001"}, "nor a ray:// client address"),
        ({"YOLO_RAY_ADDRESS": "http://"}, "http://ray-head:8265"),
        ({"YOLO_RAY_ADDRESS": "http://ray-head:99999"}, "http://ray-head:8265"),
        ({"YOLO_RAY_ADDRESS": "http://ray head:8265"}, "http://ray-head:8265"),
        ({"YOLO_RAY_PYTHON": "python3 -c 'import os'"}, "YOLO_RAY_PYTHON must be"),
        ({"YOLO_RAY_PYTHON": "$(id)"}, "YOLO_RAY_PYTHON must be"),
        ({"YOLO_RAY_PYTHON": "-m"}, "YOLO_RAY_PYTHON must be"),
    ],
)
def test_bad_ray_settings_are_refused_with_the_fix(
    tmp_path: Path, env: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ContainerError) as refused:
        _config(tmp_path, **env)
    assert fragment in refused.value.message


@pytest.mark.parametrize(
    "address",
    [
        "http://admin:hunter2@ray-head:8265",
        "https://ray-head:8265/?token=hunter2",
        "https://ray-head:8265/#hunter2",
    ],
)
def test_credentials_in_the_address_are_refused_and_never_echoed(
    tmp_path: Path, address: str
) -> None:
    with pytest.raises(ContainerError) as refused:
        _config(tmp_path, YOLO_EXECUTOR="ray", YOLO_RAY_ADDRESS=address)
    assert "no user name, password, query or fragment" in refused.value.message
    assert "hunter2" not in refused.value.message


# --------------------------------------------------------------------------- the images


def test_every_image_installs_the_ray_extra_with_the_pinned_ray() -> None:
    pins = pinned((REPO_ROOT / "constraints.txt").read_text())
    assert pins["ray"] == RAY_VERSION, "constraints.txt and the contract pin one Ray"
    assert re.search(
        r'^ray = \["ray\[default,tune\]', (REPO_ROOT / "pyproject.toml").read_text(), re.M
    )
    for path in sorted(DOCKER.glob("*.Dockerfile")):
        _, stages = parse_dockerfile(path.read_text())
        wheel = re.compile(r"jupyter_yolo-\$\{VERSION\}-py3-none-any\.whl\[([a-z,]+)\]")
        extras = [
            set(m.group(1).split(","))
            for run in stages[-1].all("RUN")
            for m in wheel.finditer(run.args)
        ]
        assert extras and all("ray" in e for e in extras), f"{path.name}: {extras}"
        apt = [r.args for r in stages[-1].all("RUN") if "apt-get install" in r.args]
        assert any(re.search(r"apt-get install [^&]*\bwget\b", a) for a in apt), (
            f"{path.name}: no wget, which KubeRay's probes of Ray pods run"
        )
    for path in sorted((DOCKER / "constraints").glob("*.txt")):
        other = pinned(path.read_text()).get("ray")
        assert other in (None, RAY_VERSION), f"{path.name} pins ray {other}"


def test_a_ray_node_started_by_kuberay_loads_the_vendor_environment() -> None:
    """KubeRay runs ``ray start`` in ``bash -c`` (``-lc`` in older releases), not through the
    image's entrypoint: every vendor environment the entrypoint loads (CANN's set_env.sh) is
    loaded by every bash of the ascend image too (``BASH_ENV``, and login shells' profile.d).
    """
    entrypoint = (DOCKER / "entrypoint.sh").read_text()
    loop = re.search(r"^for vendor_env in (.+); do$", entrypoint, re.MULTILINE)
    assert loop is not None
    vendor_files = loop.group(1).split()
    _, stages = parse_dockerfile((DOCKER / "ascend.Dockerfile").read_text())
    env: dict[str, str] = {}
    for instruction in stages[-1].all("ENV"):
        env.update(assignments(instruction.args))
    script = env.get("BASH_ENV", "")
    assert script.startswith("/etc/profile.d/"), "login shells and bash -c read one script"
    writes = [
        command
        for run in stages[-1].all("RUN")
        for command in run.args.split(" && ")
        if command.rstrip().endswith(f"> {script}")
    ]
    assert len(writes) == 1, writes
    for path in vendor_files:
        assert path in writes[0] and '. \\"\\$f\\"' in writes[0], path
