"""The container's health check: ``GET {base_url}api`` on the local JupyterLab, no token needed.

jupyter_server answers that request without authentication with its version only, so the check
needs no secret and reveals nothing. ``jupyter-yolo healthcheck`` exits 0 when it answers.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from .config import ContainerConfig


def check_health(config: ContainerConfig, timeout: float = 5.0) -> tuple[bool, str]:
    """Ask the local server for its version; return whether it answered and what it said."""
    url = config.local_url("api")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(url, timeout=timeout) as response:
            body = json.loads(response.read(4096))
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return False, f"{url}: {exc}"
    if not isinstance(body, dict) or "version" not in body:
        return False, f"{url} did not answer like a Jupyter server"
    return True, f"{url}: jupyter_server {body['version']}"
