"""``YOLO_ALLOWED_STREAM_SOURCES``: the container's way to set ``YoloApp.allowed_stream_sources``.

The entrypoint reads the comma-separated hosts, refuses a value that is not a list of hosts
(a URL, a path, credentials) before anything starts, and passes each host to JupyterLab as
``--YoloApp.allowed_stream_sources=HOST``; the server extension's trait gets them all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from jupyter_server.serverapp import ServerApp
from traitlets.config import Config

from jupyter_yolo.app import YoloApp
from jupyter_yolo.container import ContainerError
from jupyter_yolo.container.config import ContainerConfig
from jupyter_yolo.container.supervisor import lab_arguments


def _server_config(args: list[str]) -> Config:
    """The traitlets config the server builds from its command line (flags included)."""
    server = ServerApp()
    server.parse_command_line(args)
    return server.config


def test_hosts_reach_the_extension_setting(tmp_path: Path) -> None:
    config = ContainerConfig.from_environ(
        {
            "YOLO_WORKSPACE": str(tmp_path),
            "YOLO_ALLOWED_STREAM_SOURCES": " camera1.local, 10.0.0.7:554 ,,[fd00::7]:8554",
        }
    )
    assert config.allowed_stream_sources == ("camera1.local", "10.0.0.7:554", "[fd00::7]:8554")
    args = lab_arguments(config, ["--YoloApp.max_predict_workers=3"])
    assert args[-1] == "--ServerApp.disable_check_xsrf=False"
    app = YoloApp(config=_server_config(args))
    assert app.allowed_stream_sources == ["camera1.local", "10.0.0.7:554", "[fd00::7]:8554"]
    assert app.max_predict_workers == 3, "the caller's own arguments still apply"


def test_unset_or_blank_allows_no_stream(tmp_path: Path) -> None:
    for env in ({}, {"YOLO_ALLOWED_STREAM_SOURCES": "  , "}):
        config = ContainerConfig.from_environ({"YOLO_WORKSPACE": str(tmp_path), **env})
        assert config.allowed_stream_sources == ()
        assert not [a for a in lab_arguments(config, []) if "allowed_stream_sources" in a]
        app = YoloApp(config=_server_config(lab_arguments(config, [])))
        assert app.allowed_stream_sources == []


@pytest.mark.parametrize(
    "value",
    ["rtsp://camera1.local/stream", "camera1.local/live", "user:secret@camera1", "cam one"],
)
def test_a_url_or_credentials_are_refused_with_the_fix(tmp_path: Path, value: str) -> None:
    with pytest.raises(ContainerError, match=r"hosts separated by commas.*10\.0\.0\.7:554"):
        ContainerConfig.from_environ(
            {"YOLO_WORKSPACE": str(tmp_path), "YOLO_ALLOWED_STREAM_SOURCES": f"ok.local,{value}"}
        )
