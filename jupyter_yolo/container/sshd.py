"""A keys-only OpenSSH server for the container's user, configured from the environment.

Where its files live:

* host keys (ed25519 and RSA 3072): ``$YOLO_WORKSPACE/.jupyter-yolo/ssh/``, generated with
  ``ssh-keygen`` at the first start and kept on the volume, so clients see the same host key
  after a restart or an image update;
* ``sshd_config``, ``authorized_keys`` (written from ``SSH_AUTHORIZED_KEYS``, mode 0600) and the
  pid file: ``~/.local/state/jupyter-yolo/sshd/``, written again at every start. They are kept
  under the home folder because sshd's ``StrictModes`` checks every folder from the keys file up
  to the home folder (or ``/``) for group or world write permission, which a volume with a
  Kubernetes ``fsGroup`` or a test's ``/tmp`` would fail.

sshd runs as the entrypoint's own (non-root) user, so it can log in that user only (``AllowUsers``
says so too); it refuses passwords, keyboard-interactive logins and root, and ``UsePAM no``.
The entrypoint refuses to start sshd as root. ``python -m jupyter_yolo.container.sshd`` prepares
the files as the entrypoint does and runs sshd in the foreground (tests use it).
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import ContainerError
from .auth import TOKEN_DIR
from .config import ContainerConfig

HOST_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (("ed25519", ()), ("rsa", ("-b", "3072")))
SBIN_PATH = ("/usr/sbin", "/usr/local/sbin", "/sbin")


@dataclass(frozen=True)
class SshdSetup:
    """A prepared sshd: the command that runs it and the files it uses."""

    command: list[str]
    config_path: Path
    host_keys: list[Path]
    fingerprints: list[str]
    user: str


def host_key_dir(workspace: Path) -> Path:
    """Where the host keys are kept: on the workspace volume."""
    return workspace / TOKEN_DIR / "ssh"


def run_dir() -> Path:
    """Where the per-start files (config, authorized keys, pid) go: under the home folder."""
    return Path.home() / ".local" / "state" / "jupyter-yolo" / "sshd"


def find_program(name: str) -> str:
    """Absolute path of an OpenSSH program (sshd needs one to re-execute itself)."""
    search = os.pathsep.join([*SBIN_PATH, os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        raise ContainerError(
            f"SSH_AUTHORIZED_KEYS is set but {name} is not installed "
            f"(Debian and Ubuntu: apt-get install openssh-server)."
        )
    return os.path.abspath(found)


def _quote(value: str, what: str) -> str:
    if any(c in value for c in '"\n\r\x00'):
        raise ContainerError(f"The {what} {value!r} cannot be written to sshd_config.")
    return f'"{value}"' if any(c.isspace() for c in value) else value


def _write_private(path: Path, text: str) -> None:
    """Write a file with mode 0600 from the start, replacing it atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL
    )


def authorized_keys_text(keys: str) -> tuple[str, int]:
    """The authorized_keys file for ``SSH_AUTHORIZED_KEYS`` and its number of key lines."""
    lines = [line.strip() for line in keys.replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line and not line.startswith("#")]
    if any("PRIVATE KEY" in line for line in lines):
        raise ContainerError(
            "SSH_AUTHORIZED_KEYS holds a private key: put the public key (the .pub file) there, "
            "and treat that private key as leaked."
        )
    if not lines:
        raise ContainerError("SSH_AUTHORIZED_KEYS holds no public key.")
    return "\n".join(lines) + "\n", len(lines)


def fingerprints(keygen: str, path: Path, expected: int) -> list[str]:
    """SHA256 fingerprints of the keys in ``path``; refuse lines that are not public keys."""
    done = _run([keygen, "-l", "-f", str(path)])
    found = [line.split()[1] for line in done.stdout.splitlines() if len(line.split()) > 1]
    if done.returncode != 0 or len(found) != expected:
        bad = expected - len(found)
        raise ContainerError(
            f"SSH_AUTHORIZED_KEYS: {bad} of its {expected} lines are not OpenSSH public keys "
            f"(one key a line, as in ~/.ssh/id_ed25519.pub)."
        )
    return found


def ensure_host_keys(keygen: str, folder: Path) -> list[Path]:
    """Generate the host keys missing in ``folder``; keep (and tighten) the ones there."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    keys = []
    for kind, extra in HOST_KEYS:
        path = folder / f"ssh_host_{kind}_key"
        if not path.exists():
            tmp = folder / f".{path.name}.{os.getpid()}"
            for stale in (tmp, tmp.with_name(tmp.name + ".pub")):
                stale.unlink(missing_ok=True)
            done = _run(
                [
                    keygen,
                    "-q",
                    "-t",
                    kind,
                    *extra,
                    "-N",
                    "",
                    "-C",
                    "jupyter-yolo host key",
                    "-f",
                    str(tmp),
                ]
            )
            if done.returncode != 0:
                raise ContainerError(f"ssh-keygen could not make a host key: {done.stderr.strip()}")
            os.replace(tmp.with_name(tmp.name + ".pub"), path.with_name(path.name + ".pub"))
            os.replace(tmp, path)
        # a volume mounted with a group (Kubernetes fsGroup) may have loosened the mode, and
        # sshd ignores a private key others can read
        os.chmod(path, 0o600)
        keys.append(path)
    return keys


def sshd_config_text(
    config: ContainerConfig, user: str, host_keys: list[Path], folder: Path, path_env: str
) -> str:
    """The sshd_config of this start: keys only, no root, the one user, nothing else."""
    keys_file = _quote(str(folder / "authorized_keys"), "path").replace("%", "%%")
    lines = [
        "# Written by jupyter-yolo serve at every start: edits are lost.",
        f"Port {config.ssh_port}",
        *(
            [f"ListenAddress {_quote(config.ssh_listen, 'SSH_LISTEN')}"]
            if config.ssh_listen
            else []
        ),
        *(f"HostKey {_quote(str(key), 'path')}" for key in host_keys),
        f"PidFile {_quote(str(folder / 'sshd.pid'), 'path')}",
        f"AuthorizedKeysFile {keys_file}",
        f"AllowUsers {user}",
        "PermitRootLogin no",
        "AuthenticationMethods publickey",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitEmptyPasswords no",
        "HostbasedAuthentication no",
        "GSSAPIAuthentication no",
        "UsePAM no",
        "StrictModes yes",
        "PermitUserEnvironment no",
        "X11Forwarding no",
        "AllowTcpForwarding local",
        "GatewayPorts no",
        "PermitTunnel no",
        "MaxAuthTries 3",
        "LoginGraceTime 30",
        "ClientAliveInterval 60",
        "PrintMotd no",
        "Subsystem sftp internal-sftp",
        "SetEnv "
        + " ".join(
            _quote(f"{name}={value}", "environment value")
            for name, value in (("PATH", path_env), ("YOLO_WORKSPACE", str(config.workspace)))
        ),
    ]
    return "\n".join(lines) + "\n"


def check_port(config: ContainerConfig) -> None:
    """Refuse a port sshd could not listen on, with the fix (sshd would only log it)."""
    host = config.ssh_listen or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, config.ssh_port))
        except OSError as exc:
            if exc.errno == errno.EACCES:
                raise ContainerError(
                    f"uid {os.geteuid()} may not listen on port {config.ssh_port}: set SSH_PORT "
                    f"to 1024 or more, or allow unprivileged ports (Docker does by default; "
                    f"Kubernetes: sysctl net.ipv4.ip_unprivileged_port_start=0)."
                ) from None
            raise ContainerError(
                f"sshd cannot listen on {host}:{config.ssh_port}: {exc.strerror}."
            ) from None


def prepare_sshd(config: ContainerConfig) -> SshdSetup:
    """Write host keys, authorized keys and sshd_config; check them with ``sshd -t``."""
    if config.ssh_authorized_keys is None:
        raise ContainerError("SSH_AUTHORIZED_KEYS is not set.")
    if os.geteuid() == 0:
        raise ContainerError(
            "SSH_AUTHORIZED_KEYS is set but the entrypoint runs as root: root logins are "
            "refused by design and a root sshd could log in any account. Run the container as "
            "its non-root user (the image's default, uid 1000)."
        )
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        raise ContainerError(
            f"uid {os.geteuid()} has no entry in /etc/passwd, so sshd cannot log it in; run "
            f"the container as its own user (uid 1000)."
        ) from None
    sshd, keygen = find_program("sshd"), find_program("ssh-keygen")
    check_port(config)
    folder = run_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    text, count = authorized_keys_text(config.ssh_authorized_keys)
    keys_file = folder / "authorized_keys"
    _write_private(keys_file, text)
    prints = fingerprints(keygen, keys_file, count)
    host_keys = ensure_host_keys(keygen, host_key_dir(config.workspace))
    config_path = folder / "sshd_config"
    path_env = os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin"
    _write_private(config_path, sshd_config_text(config, user, host_keys, folder, path_env))
    done = _run([sshd, "-t", "-f", str(config_path)])
    if done.returncode != 0:
        raise ContainerError(f"sshd refused its configuration: {done.stderr.strip()}")
    return SshdSetup(
        command=[sshd, "-D", "-e", "-f", str(config_path)],
        config_path=config_path,
        host_keys=host_keys,
        fingerprints=prints,
        user=user,
    )


def sshd_environment(base: dict[str, str]) -> dict[str, str]:
    """The environment of sshd itself: no token, no keys, nothing sessions should inherit."""
    keep = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ")
    return {name: base[name] for name in keep if name in base}


def main() -> int:
    """Prepare sshd from the environment and run it in the foreground (for tests and debugging)."""
    try:
        setup = prepare_sshd(ContainerConfig.from_environ())
    except ContainerError as exc:
        print(f"jupyter-yolo sshd: {exc.message}", file=sys.stderr)
        return 2
    print(f"jupyter-yolo sshd: {setup.config_path}", file=sys.stderr, flush=True)
    os.execve(setup.command[0], setup.command, sshd_environment(dict(os.environ)))


if __name__ == "__main__":
    sys.exit(main())
