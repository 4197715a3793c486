"""``jupyter-yolo serve``: the container's entrypoint process.

At start it reads and checks the settings (:mod:`.config`), refuses arguments that would weaken
security (:func:`.auth.check_server_args`), creates the workspace, copies the pretrained weights
baked into the image into ``<workspace>/weights`` when they are missing there (a copy, not a
link: job requests are confined to the workspace), writes ultralytics' offline settings, picks
the token (:mod:`.auth`) and, with ``SSH_AUTHORIZED_KEYS``, prepares sshd (:mod:`.sshd`). Any
refusal is one line on stderr and exit status 2, before anything listens.

Then it runs sshd and JupyterLab (``python -m jupyter_yolo.container.lab``, which checks the
effective security settings before it serves) as children in their own sessions and waits.

Signals: SIGTERM, SIGINT, SIGHUP and SIGQUIT make it send SIGTERM to JupyterLab and sshd once.
JupyterLab's clean shutdown stops running jobs gracefully (each finishes its batch and saves a
loadable ``last.pt``; ``YoloApp.stop_grace_period``) before it exits. The entrypoint waits up to
``YOLO_STOP_TIMEOUT`` seconds for it, then kills it. It reaps every child, including orphans
re-parented to it when it is PID 1, and exits with JupyterLab's exit status.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from . import ContainerError
from .auth import TokenChoice, check_server_args, resolve_token
from .config import ContainerConfig
from .sshd import SshdSetup, prepare_sshd, sshd_environment

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
EXIT_REFUSED = 2
SSHD_STOP_TIMEOUT = 5.0
#: variables JupyterLab (and so kernels and terminals) must not inherit
PRIVATE_VARIABLES = ("JUPYTER_TOKEN_FILE", "SSH_AUTHORIZED_KEYS")


def say(message: str) -> None:
    """One line from the entrypoint on stderr."""
    print(f"jupyter-yolo serve: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- preparation


def prepare_workspace(config: ContainerConfig) -> None:
    """Create the workspace and its weights folder; refuse one this user cannot write."""
    weights = config.workspace / "weights"
    try:
        weights.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ContainerError(
            f"Cannot create the workspace {config.workspace} ({exc.strerror}): mount a volume "
            f"there that uid {os.geteuid()} can write, or set YOLO_WORKSPACE."
        ) from None
    if not os.access(config.workspace, os.W_OK | os.X_OK):
        raise ContainerError(
            f"The workspace {config.workspace} is not writable by uid {os.geteuid()}: "
            f"chown the volume to it (the image's user is uid 1000)."
        )


def provision_weights(source: Path, workspace: Path) -> list[str]:
    """Copy weights files from ``source`` into ``<workspace>/weights`` where missing.

    Files already in the workspace are never replaced. Returns the names copied.
    """
    if not source.is_dir():
        return []
    target = workspace / "weights"
    copied = []
    for path in sorted(source.iterdir()):
        dest = target / path.name
        if not path.is_file() or path.name.startswith(".") or dest.exists():
            continue
        tmp = target / f".{path.name}.{os.getpid()}.tmp"
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            say(f"warning: could not copy {path} into {target}: {exc.strerror}")
            continue
        copied.append(path.name)
    return copied


def prepare_offline(workspace: Path) -> None:
    """Ultralytics settings and fonts for kernels too: no telemetry, no font download."""
    from ..runner.offline import install_fonts, user_config_dir, write_settings

    try:
        write_settings(workspace)
        install_fonts(user_config_dir(workspace))
    except OSError as exc:
        say(f"warning: could not write ultralytics' offline settings: {exc}")


def lab_arguments(config: ContainerConfig, extra: Sequence[str]) -> list[str]:
    """JupyterLab's command line: ours first, the caller's next, XSRF forced on last."""
    args = [
        "--no-browser",
        f"--ServerApp.ip={config.jupyter_ip}",
        f"--ServerApp.port={config.jupyter_port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={config.base_url}",
        f"--ServerApp.root_dir={config.workspace}",
        # offline by design: no news feed, no update check
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:
        args.append("--allow-root")
    return [*args, *config.server_arguments(), *extra, "--ServerApp.disable_check_xsrf=False"]


def lab_environment(config: ContainerConfig, token: str, base: dict[str, str]) -> dict[str, str]:
    """JupyterLab's environment: the token, the workspace, offline ultralytics, no SSH keys."""
    env = {k: v for k, v in base.items() if k not in PRIVATE_VARIABLES}
    env["JUPYTER_TOKEN"] = token
    env["YOLO_WORKSPACE"] = str(config.workspace)
    env.setdefault("YOLO_OFFLINE", "1")
    env.setdefault("YOLO_AUTOINSTALL", "False")
    env.setdefault("YOLO_CONFIG_DIR", str(config.workspace / ".ultralytics"))
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def announce_token(config: ContainerConfig, choice: TokenChoice) -> None:
    """Say where the token came from; print a generated one, once, on stdout."""
    url = f"http://<host>:{config.jupyter_port}{config.base_url}lab"
    if choice.source == "generated":
        print(
            f"jupyter-yolo serve: generated a token for JupyterLab, kept in {choice.path} "
            f"(mode 0600) and shown only this once:\n"
            f"    {url}?token={choice.token}\n"
            f"  (<host>: this machine, or the host and port you published)",
            flush=True,
        )
    elif choice.source == "kept":
        say(f"using the token kept in {choice.path} (delete the file for a new one)")
    else:
        say(f"using the token from {choice.source}; open {url}")
    if len(choice.token) < 16:
        say("warning: the token is short; 32 random characters or more are recommended")


# --------------------------------------------------------------------------- supervision


@dataclass
class Child:
    """A process the entrypoint started and reaps."""

    name: str
    proc: subprocess.Popen[bytes]
    exit_code: int | None = None

    @property
    def pid(self) -> int:
        """The child's pid."""
        return self.proc.pid

    @property
    def alive(self) -> bool:
        """Whether it has not been reaped yet."""
        return self.exit_code is None

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` unless it has been reaped (its pid may be reused then)."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


def spawn(name: str, command: list[str], env: dict[str, str]) -> Child:
    """Start a child in its own session (a terminal's Ctrl-C reaches the entrypoint only)."""
    proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    return Child(name, proc)


@dataclass
class Supervisor:
    """Runs sshd and JupyterLab, forwards stop signals, reaps children, returns the exit code."""

    config: ContainerConfig
    lab_command: list[str]
    lab_env: dict[str, str]
    sshd: SshdSetup | None = None
    signals: list[int] = field(default_factory=list)
    lab: Child | None = None
    sshd_child: Child | None = None

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    def run(self) -> int:
        """Start the children and supervise them until JupyterLab has exited."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_stop_signal)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the loop up
        try:
            if self.sshd is not None:
                self.sshd_child = spawn(
                    "sshd", self.sshd.command, sshd_environment(dict(os.environ))
                )
                say(
                    f"sshd started on port {self.config.ssh_port} for {self.sshd.user} "
                    f"(keys only: {', '.join(self.sshd.fingerprints)})"
                )
            if not self.signals:
                self.lab = spawn("JupyterLab", self.lab_command, self.lab_env)
            return self._supervise(wake_r)
        finally:
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)

    def _supervise(self, wake: int) -> int:
        stopping_since: float | None = None
        killed = False
        while True:
            self._reap()
            if self.lab is None or not self.lab.alive:
                break
            if self.signals and stopping_since is None:
                stopping_since = time.monotonic()
                name = signal.Signals(self.signals[0]).name
                say(
                    f"{name}: stopping JupyterLab; running jobs finish their batch and save "
                    f"last.pt first (waiting up to {self.config.stop_timeout:g} s)"
                )
                self.lab.signal(signal.SIGTERM)
                if self.sshd_child is not None:
                    self.sshd_child.signal(signal.SIGTERM)
            elif (
                stopping_since is not None
                and not killed
                and time.monotonic() - stopping_since > self.config.stop_timeout
            ):
                say(f"JupyterLab did not stop within {self.config.stop_timeout:g} s: killing it")
                self.lab.signal(signal.SIGKILL)
                killed = True
            with contextlib.suppress(InterruptedError):
                select.select([wake], [], [], 0.5)
            with contextlib.suppress(BlockingIOError):
                while os.read(wake, 512):
                    pass
        self._stop_sshd()
        if self.lab is None:
            return 0
        code = self.lab.exit_code or 0
        if stopping_since is None:
            say(f"JupyterLab exited with status {code}")
        return code

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for child in (self.lab, self.sshd_child):
                if child is not None and child.pid == pid:
                    code = os.waitstatus_to_exitcode(status)
                    child.proc.returncode = code
                    child.exit_code = 128 - code if code < 0 else code
                    if child is self.sshd_child and not self.signals:
                        say(
                            f"sshd exited with status {child.exit_code}; SSH is unavailable "
                            f"until the container restarts (JupyterLab keeps running)"
                        )

    def _stop_sshd(self) -> None:
        child = self.sshd_child
        if child is None or not child.alive:
            return
        child.signal(signal.SIGTERM)
        deadline = time.monotonic() + SSHD_STOP_TIMEOUT
        while child.alive and time.monotonic() < deadline:
            time.sleep(0.05)
            self._reap()
        if child.alive:
            child.signal(signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, 0)
            child.exit_code = 128 + signal.SIGKILL


# --------------------------------------------------------------------------- entry


def serve(args: Sequence[str]) -> int:
    """Run the entrypoint with JupyterLab arguments ``args``; return the exit status."""
    try:
        config = ContainerConfig.from_environ()
        check_server_args(args)
        prepare_workspace(config)
        choice = resolve_token(config)
        sshd = prepare_sshd(config) if config.ssh_authorized_keys is not None else None
    except ContainerError as exc:
        say(f"refused: {exc.message}")
        return EXIT_REFUSED
    copied = provision_weights(config.weights_dir, config.workspace)
    if copied:
        say(
            f"copied {', '.join(copied)} from {config.weights_dir} into "
            f"{config.workspace / 'weights'}"
        )
    prepare_offline(config.workspace)
    announce_token(config, choice)
    if sshd is None:
        say("SSH_AUTHORIZED_KEYS is not set: no sshd")
    command = [sys.executable, "-m", "jupyter_yolo.container.lab", *lab_arguments(config, args)]
    supervisor = Supervisor(
        config=config,
        lab_command=command,
        lab_env=lab_environment(config, choice.token, dict(os.environ)),
        sshd=sshd,
    )
    return supervisor.run()
