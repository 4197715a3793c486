"""The runner's network guard lets a Ray Tune driver and its trials reach their cluster only.

On a real cluster ``RAY_ADDRESS`` names a remote GCS (``10.0.0.5:6379``); the guard refuses
every non-loopback address unless it was allowed. The guard is tried in a subprocess (it patches
the socket module of the process it is installed in).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jupyter_yolo.runner.offline import ray_address_host


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("10.0.0.5:6379", "10.0.0.5"),
        ("ray://head.example:10001", "head.example"),
        ("raycluster-head-svc:6379", "raycluster-head-svc"),
        ("[fd00::5]:6379", "fd00::5"),
        ("http://10.0.0.6:8265/", "10.0.0.6"),
        ("10.0.0.7", "10.0.0.7"),
        ("auto", None),
        ("local", None),
        ("", None),
        (None, None),
    ],
)
def test_the_host_of_a_ray_address(value: str | None, host: str | None) -> None:
    assert ray_address_host(value) == host


GUARDED = r"""
import errno, socket, sys
from jupyter_yolo.runner import offline

def attempt(host):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)  # no wait for an address nobody answers (TEST-NET)
    try:
        sock.connect_ex((host, 6379))
        return "passed"
    except offline.NetworkBlocked:
        return "refused"
    finally:
        sock.close()

assert offline.install_socket_guard()
before = [attempt(h) for h in ("192.0.2.5", "192.0.2.6", "192.0.2.7")]
allowed = offline.allow_ray_cluster(("192.0.2.6",))
after = [attempt(h) for h in ("192.0.2.5", "192.0.2.6", "192.0.2.7")]
print(" ".join(before), "|", " ".join(allowed), "|", " ".join(after))
"""


def test_a_runner_on_ray_may_reach_the_gcs_host_and_its_node_nothing_else() -> None:
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_YOLO_ALLOW_NETWORK"}
    env["RAY_ADDRESS"] = "192.0.2.5:6379"
    done = subprocess.run(
        [sys.executable, "-c", GUARDED],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    before, allowed, after = (part.split() for part in done.stdout.strip().split(" | "))
    assert before == ["refused", "refused", "refused"]
    assert allowed == ["192.0.2.5", "192.0.2.6"]
    assert after == ["passed", "passed", "refused"]  # the GCS host, the node; not the rest
