"""``python -m jupyter_yolo.container.lab``: ``jupyter lab`` that refuses to serve insecurely.

It starts JupyterLab exactly as ``jupyter lab`` does (``LabApp.launch_instance``), but between
the server's initialisation (every config file and argument applied) and the start of its event
loop it reads the effective token, the identity provider and the web application's settings, and
exits with status 2 when the token is empty or not the one from ``JUPYTER_TOKEN``,
authentication is off or XSRF checks are off. No request is served before that check.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from .auth import security_problems

EXIT_INSECURE = 2


def server_security_problems(serverapp: Any) -> list[str]:
    """Problems of an initialised ``ServerApp`` (see :func:`security_problems`)."""
    provider = serverapp.identity_provider
    return security_problems(
        token=str(provider.token or ""),
        expected=os.environ.get("JUPYTER_TOKEN"),
        auth_enabled=bool(provider.auth_enabled),
        settings=dict(serverapp.web_app.settings),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Initialise JupyterLab, check its security, then serve until it is stopped."""
    from jupyter_server.extension.application import (
        _preparse_for_stopping_flags,  # what LabApp.launch_instance does for --help, --version
    )
    from jupyterlab.labapp import LabApp  # type: ignore[import-untyped]

    args = list(sys.argv[1:] if argv is None else argv)
    _preparse_for_stopping_flags(LabApp, args)  # type: ignore[no-untyped-call]
    serverapp = LabApp.initialize_server(argv=args)
    problems = server_security_problems(serverapp)
    if problems:
        print(
            "jupyter-yolo serve: refusing to start JupyterLab: " + "; ".join(problems) + ".",
            file=sys.stderr,
            flush=True,
        )
        serverapp.http_server.stop()
        return EXIT_INSECURE
    serverapp.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
