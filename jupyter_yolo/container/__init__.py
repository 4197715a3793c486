"""The container entrypoint (``jupyter-yolo serve``), shared by every image in ``docker/``.

It starts JupyterLab with the extension (authentication always on, XSRF checks always on), an
optional keys-only sshd, and forwards stop signals so running jobs end gracefully. Everything it
reads from the environment is described by :data:`jupyter_yolo.container.config.ENVIRONMENT`
and documented in ``docker/CONTRACT.md``. This package imports neither Jupyter nor torch, so the
sshd part also runs under a bare system Python.
"""

from __future__ import annotations


class ContainerError(Exception):
    """A setting or state the entrypoint refuses to start with; the message says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
