"""Where the supervisor keeps its files: ``<home>/.openclaw-supervisor/`` (mode 0700).

One supervisor per user home. Everything it owns lives in this one directory beside the
profiles' state dirs (discovery skips it), so two homes never share a socket or a lock.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from openclaw_multi.errors import SupervisorError
from openclaw_multi.profiles.discovery import SUPERVISOR_DIR_NAME
from openclaw_multi.profiles.paths import resolve_paths

__all__ = ["MAX_UNIX_PATH", "SupervisorPaths", "home_from_env", "supervisor_paths"]

MAX_UNIX_PATH: Final = 107
"""Longest ``sun_path`` Linux accepts (108 bytes with the terminating NUL)."""


@dataclass(frozen=True)
class SupervisorPaths:
    """The files in one home's supervisor directory.

    Attributes:
        home: The user home (``OPENCLAW_HOME`` or ``HOME``) the profiles live under.
        directory: ``<home>/.openclaw-supervisor``.
    """

    home: Path
    directory: Path

    @property
    def socket_path(self) -> Path:
        """The control socket (stream, mode 0600)."""
        return self.directory / "supervisor.sock"

    @property
    def lock_path(self) -> Path:
        """Held (flock) by the one supervisor of this home for its whole life."""
        return self.directory / "supervisor.lock"

    @property
    def identity_path(self) -> Path:
        """Who the running supervisor is: pid, start time, version."""
        return self.directory / "supervisor.json"

    @property
    def desired_path(self) -> Path:
        """Which profiles should run."""
        return self.directory / "desired.json"

    @property
    def notify_path(self) -> Path:
        """The datagram socket gateways push sd_notify readiness to."""
        return self.directory / "notify.sock"

    @property
    def log_path(self) -> Path:
        """The supervisor's own (rotated) log."""
        return self.directory / "supervisor.log"

    def ensure_directory(self) -> None:
        """Create the directory (0700) and tighten its mode if it already existed.

        Raises:
            SupervisorError: It cannot be created, or a socket path in it is too long for
                ``AF_UNIX`` (the home path is too deep).
        """
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
        except OSError as err:
            raise SupervisorError(
                f"cannot create {self.directory}: {err.strerror or err}"
            ) from None
        check_socket_path(self.socket_path)


def check_socket_path(path: Path) -> None:
    """Refuse a unix socket path the kernel would cut short.

    Raises:
        SupervisorError: ``path`` is longer than :data:`MAX_UNIX_PATH` bytes.
    """
    size = len(os.fsencode(path))
    if size > MAX_UNIX_PATH:
        raise SupervisorError(
            f"socket path {path} is {size} bytes, over the {MAX_UNIX_PATH}-byte unix socket "
            "limit: use a shorter OPENCLAW_HOME"
        )


def home_from_env(env: Mapping[str, str]) -> Path:
    """The home the profiles live under: ``OPENCLAW_HOME``, else ``HOME`` (as profiles do).

    Raises:
        UsageError: Neither is set.
    """
    return resolve_paths(None, env, explicit=False).home


def supervisor_paths(home: Path) -> SupervisorPaths:
    """The supervisor files of ``home`` (nothing is touched on disk)."""
    return SupervisorPaths(home=home, directory=home / SUPERVISOR_DIR_NAME)
