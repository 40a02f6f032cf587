"""A real OpenSSH server for tests: our own ``sshd -D -e`` on a free loopback port.

Everything it needs (host key, user keys, authorized_keys, config, pid file, log) lives in
a temp dir; nothing of the system's sshd is touched. The server is a child we own: it is
stopped by pid, and its per-connection session processes are found as its descendants
(psutil), so a test can kill exactly the session serving a tunnel.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port, wait_until

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")


def require_openssh() -> None:
    """Skip (or, with CI set, fail) when OpenSSH's server or client is missing."""
    found = {
        "sshd": os.path.exists(SSHD),
        "ssh": shutil.which("ssh") is not None,
        "ssh-keygen": shutil.which("ssh-keygen") is not None,
    }
    missing = [name for name, there in found.items() if not there]
    if missing:
        message = (
            f"OpenSSH missing ({', '.join(missing)}): Debian openssh-server/openssh-client, "
            "see scripts/setup-system-packages"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if not PRIVSEP_DIR.is_dir():
        if os.geteuid() != 0:
            pytest.skip(f"sshd needs {PRIVSEP_DIR} (create it as root)")
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)


def keygen(path: Path) -> Path:
    """A new ed25519 key pair without passphrase at ``path`` (+ ``.pub``)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "openclaw-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


@dataclass
class Sshd:
    """One running test sshd."""

    proc: subprocess.Popen[bytes]
    port: int
    directory: Path
    user: str
    user_key: Path
    """Authorized: the key a tunnel should use."""
    stranger_key: Path
    """Not authorized: the server refuses it."""

    @property
    def destination(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "sshd.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def sessions(self) -> list[psutil.Process]:
        """The processes serving connections: descendants of our listener, nothing else."""
        try:
            return list(psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            return []

    def kill_sessions(self) -> list[int]:
        """SIGKILL every session process under our listener (by pid); return the pids."""
        killed = []
        for child in self.sessions():
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(signal.SIGKILL)
                killed.append(child.pid)
        return killed

    def stop(self) -> None:
        sessions = self.sessions()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for child in sessions:  # started by our sshd: ours to end
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def start_sshd() -> Sshd:
    """Generate keys and a config in a temp dir, run ``sshd -D -e``, wait until it listens."""
    require_openssh()
    directory = Path(tempfile.mkdtemp(prefix="ocssh-"))
    host_key = keygen(directory / "host_ed25519")
    user_key = keygen(directory / "user_ed25519")
    stranger_key = keygen(directory / "stranger_ed25519")
    authorized = directory / "authorized_keys"
    authorized.write_text(user_key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    port = free_port()
    lines = [
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized}",
        f"PidFile {directory / 'sshd.pid'}",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "AllowTcpForwarding yes",
        "PermitTTY no",
        "X11Forwarding no",
        "LogLevel VERBOSE",
    ]
    if os.geteuid() == 0:
        lines.append("PermitRootLogin prohibit-password")
    config = directory / "sshd_config"
    config.write_text("\n".join(lines) + "\n")
    log = (directory / "sshd.log").open("ab")
    with log:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Sshd(proc, port, directory, getpass.getuser(), user_key, stranger_key)

    def listening() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"sshd exited {proc.returncode}: {server.log()}")
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(listening, 10, "sshd to listen")
    except BaseException:
        server.stop()
        raise
    return server
