"""A real ipykernel driven through jupyter_client, as a notebook front end would drive it.

Counts every IOPub message by type (and comm messages by their widget method), so tests and
benchmarks can check what a live panel sends to the browser.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager


class KernelError(AssertionError):
    """Code run in the kernel raised."""


class KernelSession:
    """Start a python3 kernel in ``cwd`` with ``env``; run code; watch IOPub in a thread."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.km = KernelManager(kernel_name="python3")
        self.client: Any = None
        self.counts: Counter[str] = Counter()
        self.comm_bytes = 0
        self.comm_times: list[float] = []
        self.stream_warnings: list[str] = []
        self._outputs: dict[str, list[str]] = {}
        self._errors: dict[str, str] = {}
        self._done: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self) -> KernelSession:
        """Start the kernel and the IOPub reader."""
        self.km.start_kernel(cwd=str(self.cwd), env=self.env)
        self._connect()
        return self

    def _connect(self) -> None:
        self.client = self.km.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)
        self._stop.clear()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.client.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            except Exception:
                return
            kind = msg["msg_type"]
            parent = msg.get("parent_header", {}).get("msg_id")
            with self._lock:
                self.counts[kind] += 1
                if kind == "comm_msg":
                    self.comm_times.append(time.monotonic())
                    data = msg["content"].get("data", {})
                    self.counts[f"comm_msg:{data.get('method')}"] += 1
                    self.comm_bytes += len(str(data)) + sum(len(b) for b in msg.get("buffers", []))
                if kind == "stream":
                    text = msg["content"].get("text", "")
                    if parent in self._outputs:
                        self._outputs[parent].append(text)
                    if "rate limit" in text.lower() or "iopub" in text.lower():
                        self.stream_warnings.append(text)
                elif kind == "error" and parent in self._errors:
                    self._errors[parent] = "\n".join(msg["content"].get("traceback", []))
                elif kind == "status" and msg["content"].get("execution_state") == "idle":
                    event = self._done.get(parent)
                    if event is not None:
                        event.set()

    def run(self, code: str, timeout: float = 300.0) -> str:
        """Execute ``code``; return what it printed, or raise :class:`KernelError`."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg = self.client.session.msg("execute_request", content)
        msg_id = msg["header"]["msg_id"]
        event = threading.Event()
        with self._lock:
            self._outputs[msg_id] = []
            self._errors[msg_id] = ""
            self._done[msg_id] = event
        self.client.shell_channel.send(msg)
        if not event.wait(timeout):
            raise TimeoutError(f"kernel did not finish in {timeout}s:\n{code}")
        with self._lock:
            error = self._errors.pop(msg_id)
            output = "".join(self._outputs.pop(msg_id))
            self._done.pop(msg_id)
        if error:
            raise KernelError(error)
        return output

    def restart(self) -> None:
        """Restart the kernel (all its state is lost) and reconnect."""
        self._stop.set()
        if self._reader is not None:
            self._reader.join(5)
        self.client.stop_channels()
        self.km.restart_kernel(now=True)
        self._connect()

    def shutdown(self) -> None:
        """Stop the kernel."""
        self._stop.set()
        if self.client is not None:
            self.client.stop_channels()
        self.km.shutdown_kernel(now=True)
