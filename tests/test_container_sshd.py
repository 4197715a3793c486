"""The sshd the entrypoint configures, with Debian's openssh-server and the real OpenSSH client.

sshd runs as the entrypoint's non-root user (in the image, uid 1000), so the test creates a
throwaway account (CI runs as root; ``scripts/setup.sh test`` installs openssh-server), prepares
sshd exactly as the entrypoint does (``python -m jupyter_yolo.container.sshd``: the same
:func:`prepare_sshd`, then sshd in the foreground) on a loopback port as that user, and logs in
with the OpenSSH client. The account cannot run this venv's Python (it lives under /root), so
the stdlib-only module runs under Debian's /usr/bin/python3 with the checkout on PYTHONPATH.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jupyter_yolo.container.sshd import host_key_dir

from .conftest import REPO_ROOT
from .server_process import free_port

SYSTEM_PYTHON = Path("/usr/bin/python3")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create a throwaway account (CI runs as root)"
    for program in (
        "/usr/sbin/sshd",
        "/usr/bin/ssh",
        "/usr/bin/ssh-keygen",
        "/usr/sbin/useradd",
        "/usr/bin/setpriv",
        str(SYSTEM_PYTHON),
    ):
        if not Path(program).exists():
            return f"{program} is missing (scripts/setup.sh test installs openssh-server)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


@dataclass
class Account:
    name: str
    uid: int
    gid: int
    home: Path
    password: str


@pytest.fixture(scope="module")
def account() -> Iterator[Account]:
    """A throwaway user with a home in a temporary folder and a password sshd must not accept."""
    base = Path(tempfile.mkdtemp(prefix="jyolo-ssh-"))
    base.chmod(0o755)
    name = f"jyssh{secrets.token_hex(3)}"
    home = base / "home"
    password = "Pw-" + secrets.token_hex(8)
    subprocess.run(
        [
            "useradd",
            "--home-dir",
            str(home),
            "--create-home",
            "--shell",
            "/bin/sh",
            "--user-group",
            name,
        ],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            ["chpasswd"], input=f"{name}:{password}\n", text=True, check=True, capture_output=True
        )
        entry = pwd.getpwnam(name)
        yield Account(name, entry.pw_uid, entry.pw_gid, home, password)
    finally:
        subprocess.run(["userdel", "--force", name], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def client_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An authorized and an unauthorized client key (ed25519, no passphrase)."""
    folder = tmp_path_factory.mktemp("client")
    keys = []
    for name in ("authorized", "stranger"):
        path = folder / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
        keys.append(path)
    return keys[0], keys[1]


class Sshd:
    """``python -m jupyter_yolo.container.sshd`` as the account, on a loopback port."""

    def __init__(self, account: Account, keys: str, log: Path) -> None:
        self.account = account
        self.port = free_port()
        self.workspace = account.home / "workspace"
        self.log = log
        self.env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(account.home),
            "USER": account.name,
            "LOGNAME": account.name,
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONDONTWRITEBYTECODE": "1",
            "YOLO_WORKSPACE": str(self.workspace),
            "SSH_AUTHORIZED_KEYS": keys,
            "SSH_PORT": str(self.port),
            "SSH_LISTEN": "127.0.0.1",
            "JUPYTER_TOKEN": "must-not-reach-sessions-0123456789",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> list[str]:
        return [
            "setpriv",
            f"--reuid={self.account.uid}",
            f"--regid={self.account.gid}",
            "--init-groups",
            "--",
            *args,
        ]

    def start(self) -> Sshd:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command(str(SYSTEM_PYTHON), "-m", "jupyter_yolo.container.sshd"),
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd="/",
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sshd exited {self.proc.returncode}: {self.log.read_text()}")
            with socket.socket() as sock:
                sock.settimeout(1)
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        raise AssertionError(f"sshd did not listen: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def sshd(
    account: Account, client_keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sshd]:
    authorized = client_keys[0].with_suffix(".pub").read_text()
    server = Sshd(
        account, f"# the team's key\n{authorized}\n", tmp_path_factory.mktemp("sshd") / "sshd.log"
    ).start()
    try:
        yield server
    finally:
        server.stop()


def ssh(
    port: int,
    user: str,
    *options: str,
    key: Path | None = None,
    command: str = "true",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The OpenSSH client, ignoring any user config and known hosts."""
    args = [
        "ssh",
        "-F",
        "/dev/null",
        "-p",
        str(port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "NumberOfPasswordPrompts=1",
    ]
    if key is not None:
        args += ["-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]
    args += [*options, f"{user}@127.0.0.1", command]
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def test_the_authorized_key_logs_in_the_container_user(
    sshd: Sshd, account: Account, client_keys: tuple[Path, Path]
) -> None:
    done = ssh(
        sshd.port,
        account.name,
        "-o",
        "BatchMode=yes",
        key=client_keys[0],
        command='id -un; echo "ws=$YOLO_WORKSPACE"; echo "token=${JUPYTER_TOKEN:-none}"',
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert lines == [account.name, f"ws={sshd.workspace}", "token=none"], done.stdout


def test_an_unknown_key_and_root_are_refused(
    sshd: Sshd, account: Account, client_keys: tuple[Path, Path]
) -> None:
    stranger = ssh(sshd.port, account.name, "-o", "BatchMode=yes", key=client_keys[1])
    assert stranger.returncode == 255 and "Permission denied" in stranger.stderr
    root = ssh(sshd.port, "root", "-o", "BatchMode=yes", key=client_keys[0])
    assert root.returncode == 255 and "Permission denied" in root.stderr, root.stderr


def test_passwords_are_never_asked_for_nor_accepted(
    sshd: Sshd, account: Account, tmp_path: Path
) -> None:
    # an askpass program that would type the account's real password if sshd ever asked
    marker = tmp_path / "asked"
    askpass = tmp_path / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\ntouch {marker}\necho '{account.password}'\n")
    askpass.chmod(0o700)
    env = {
        **os.environ,
        "SSH_ASKPASS": str(askpass),
        "SSH_ASKPASS_REQUIRE": "force",
        "DISPLAY": ":0",
    }
    done = ssh(
        sshd.port,
        account.name,
        "-v",
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "PreferredAuthentications=password,keyboard-interactive",
        env=env,
    )
    assert done.returncode == 255, done.stdout
    assert "Permission denied (publickey)" in done.stderr
    offered = [
        line for line in done.stderr.splitlines() if "Authentications that can continue" in line
    ]
    assert offered and all(line.rstrip().endswith(": publickey") for line in offered), offered
    assert not marker.exists(), "the client was asked for a password"


def test_effective_config_is_keys_only(sshd: Sshd, account: Account) -> None:
    config = Path(account.home, ".local/state/jupyter-yolo/sshd/sshd_config")
    done = subprocess.run(
        sshd.command("/usr/sbin/sshd", "-T", "-f", str(config)),
        env=sshd.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    effective = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert effective["passwordauthentication"] == "no"
    assert effective["kbdinteractiveauthentication"] == "no"
    assert effective["permitrootlogin"] == "no"
    assert effective["pubkeyauthentication"] == "yes"
    assert effective["usepam"] == "no"
    assert effective["permitemptypasswords"] == "no"
    assert effective["authenticationmethods"] == "publickey"
    assert effective["allowusers"] == account.name


def test_host_keys_are_kept_on_the_volume_across_restarts(
    sshd: Sshd, account: Account, tmp_path: Path
) -> None:
    folder = host_key_dir(sshd.workspace)
    keys = sorted(folder.glob("ssh_host_*_key"))
    assert [k.name for k in keys] == ["ssh_host_ed25519_key", "ssh_host_rsa_key"]
    assert all((k.stat().st_mode & 0o777) == 0o600 and k.stat().st_uid == account.uid for k in keys)
    before = {k.name: k.read_bytes() for k in keys}
    scan = subprocess.run(
        ["ssh-keyscan", "-p", str(sshd.port), "-t", "ed25519", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    served = scan.stdout.split()[-1]
    assert served == (folder / "ssh_host_ed25519_key.pub").read_text().split()[1]

    again = Sshd(account, sshd.env["SSH_AUTHORIZED_KEYS"], tmp_path / "again.log")
    again.env["YOLO_WORKSPACE"] = str(sshd.workspace)
    again.start()
    try:
        assert {k.name: k.read_bytes() for k in sorted(folder.glob("ssh_host_*_key"))} == before
    finally:
        again.stop()


def test_bad_keys_are_refused_with_a_message(account: Account, tmp_path: Path) -> None:
    for keys, fragment in [
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n", "private key"),
        ("ssh-ed25519 not-base64 someone\n", "not OpenSSH public keys"),
    ]:
        server = Sshd(account, keys, tmp_path / "bad.log")
        done = subprocess.run(
            server.command(str(SYSTEM_PYTHON), "-m", "jupyter_yolo.container.sshd"),
            env=server.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2 and fragment in done.stderr, done.stderr
