"""The node host's pure rules: what a request may touch, decided without doing any of it.

* Paths: a requested path must be absolute; it is resolved with ``realpath`` (every symlink
  followed, ``..`` collapsed) and must then lie inside one of the configured roots, which are
  themselves realpath'd once. So a symlink inside a root that points outside it is refused.
* Programs: ``system.run`` resolves ``argv[0]`` (a bare name on ``PATH``, or an absolute path)
  and runs it only when that exact path is what an allowlist entry resolves to. The match is on
  the resolved path *before* symlinks are followed: a multi-call binary (busybox) reached as
  ``ls`` must not let ``rm`` through because both links lead to the same file.
* Output: :class:`CappedBuffer` keeps the first ``cap`` bytes and counts the rest.
* Reconnects: :func:`backoff_delay` is capped exponential backoff with jitter.
* Environment: :func:`child_environment` drops the node host's own secrets before a child
  process sees its environment.
* Logging: :func:`log_text` escapes what a remote party sent (a notification's text, a
  command name) so it cannot start a forged line in ``node.log``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Final

__all__ = [
    "CappedBuffer",
    "PathRefused",
    "ProgramRefused",
    "backoff_delay",
    "canonical_roots",
    "child_environment",
    "inside",
    "log_text",
    "resolve_in_roots",
    "resolve_program",
]

BACKOFF_BASE_S: Final = 0.5
BACKOFF_CAP_S: Final = 30.0
_SECRET_MARKERS: Final = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "PRIVATE_KEY")


class PathRefused(Exception):
    """A path a request may not use; ``code`` is the node error code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ProgramRefused(Exception):
    """A ``system.run`` argv the allowlist does not cover (or that cannot be resolved)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- paths ------------------------------------------------------------------------------------
def canonical_roots(roots: Iterable[str], *, base: str | None = None) -> tuple[str, ...]:
    """The configured roots, ``~`` expanded and realpath'd (relative ones against ``base``).

    Duplicates are dropped; order is kept (the first root is the default for listings).
    """
    seen: list[str] = []
    for raw in roots:
        if not raw.strip():
            continue
        path = os.path.expanduser(raw.strip())
        if not os.path.isabs(path):
            path = os.path.join(base or os.getcwd(), path)
        real = os.path.realpath(path)
        if real not in seen:
            seen.append(real)
    return tuple(seen)


def inside(path: str, root: str) -> bool:
    """True when the canonical ``path`` is ``root`` or below it (both already realpath'd)."""
    if path == root:
        return True
    prefix = root if root.endswith(os.sep) else root + os.sep
    return path.startswith(prefix)


def resolve_in_roots(requested: object, roots: Sequence[str]) -> str:
    """The canonical form of ``requested``, if it lies inside a root.

    Args:
        requested: The ``path`` param as sent (anything: it is checked here).
        roots: Canonical roots from :func:`canonical_roots`.

    Returns:
        The realpath of ``requested`` (it may not exist: the caller's open says so).

    Raises:
        PathRefused: ``INVALID_PATH`` for a missing, non-string, relative or NUL-holding
            path; ``PATH_POLICY_DENIED`` when no roots are configured or the resolved path is
            outside all of them (a symlink escape included).
    """
    if not isinstance(requested, str) or not requested:
        raise PathRefused("INVALID_PATH", "path required")
    if "\0" in requested:
        raise PathRefused("INVALID_PATH", "path contains NUL byte")
    if not os.path.isabs(requested):
        raise PathRefused("INVALID_PATH", "path must be absolute")
    if not roots:
        raise PathRefused(
            "PATH_POLICY_DENIED", "no file roots are configured on this node (nodeHost.fsRoots)"
        )
    canonical = os.path.realpath(requested)
    if not any(inside(canonical, root) for root in roots):
        raise PathRefused("PATH_POLICY_DENIED", f"{requested} is outside the node's allowed roots")
    return canonical


# -- programs ---------------------------------------------------------------------------------
def _which(name: str, path_env: str) -> str | None:
    """``name`` on ``path_env``: the first executable regular file, as an absolute path."""
    for directory in path_env.split(os.pathsep):
        if not directory or not os.path.isabs(directory):
            continue  # "" or "." on PATH would run whatever sits in the cwd
        candidate = os.path.normpath(os.path.join(directory, name))
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _resolve(entry: str, path_env: str) -> str | None:
    entry = os.path.expanduser(entry.strip())
    if not entry:
        return None
    if os.path.isabs(entry):
        return os.path.normpath(entry)
    if os.sep in entry or (os.altsep and os.altsep in entry):
        return None  # a relative path with a slash depends on the cwd: never matched
    return _which(entry, path_env)


def resolve_program(argv0: str, allowlist: Iterable[str], path_env: str) -> str:
    """The absolute path to execute for ``argv0``, if the allowlist covers it.

    Args:
        argv0: The program as requested: a bare name (looked up on ``path_env``) or an
            absolute path.
        allowlist: ``nodeHost.runAllowlist`` entries (bare names or absolute paths).
        path_env: The ``PATH`` used for both lookups.

    Returns:
        The resolved path (the caller executes exactly this, never looks it up again).

    Raises:
        ProgramRefused: ``SYSTEM_RUN_DENIED`` when the program is not allowlisted (or the
            allowlist is empty); ``INVALID_REQUEST`` for a relative path with a slash.
    """
    if os.sep in argv0 and not os.path.isabs(argv0):
        raise ProgramRefused("INVALID_REQUEST", f"relative program path not allowed: {argv0}")
    allowed = {path for entry in allowlist if (path := _resolve(entry, path_env)) is not None}
    if not allowed:
        raise ProgramRefused(
            "SYSTEM_RUN_DENIED",
            "no programs are allowed on this node (nodeHost.runAllowlist is empty)",
        )
    resolved = _resolve(argv0, path_env)
    if resolved is None or resolved not in allowed:
        name = PurePath(argv0).name or argv0
        raise ProgramRefused("SYSTEM_RUN_DENIED", f"{name} is not on this node's run allowlist")
    return resolved


def child_environment(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the node host's secrets (OPENCLAW_* and anything named like a secret)."""
    return {
        key: value
        for key, value in env.items()
        if not key.upper().startswith("OPENCLAW_")
        and not any(marker in key.upper() for marker in _SECRET_MARKERS)
    }


# -- output -----------------------------------------------------------------------------------
@dataclass
class CappedBuffer:
    """The head of a stream: the first ``cap`` bytes, and how many more were dropped."""

    cap: int
    dropped: int = 0

    def __post_init__(self) -> None:
        self._chunks: list[bytes] = []
        self._kept = 0

    def feed(self, data: bytes) -> None:
        """Keep what fits under the cap; count the rest."""
        room = self.cap - self._kept
        if room <= 0:
            self.dropped += len(data)
            return
        if len(data) > room:
            self.dropped += len(data) - room
            data = data[:room]
        self._chunks.append(data)
        self._kept += len(data)

    @property
    def truncated(self) -> bool:
        """True when anything was dropped."""
        return self.dropped > 0

    def text(self) -> str:
        """The kept bytes as UTF-8 (a character cut by the cap becomes U+FFFD)."""
        return b"".join(self._chunks).decode("utf-8", errors="replace")


# -- reconnects -------------------------------------------------------------------------------
def backoff_delay(
    attempt: int,
    *,
    base: float = BACKOFF_BASE_S,
    cap: float = BACKOFF_CAP_S,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before reconnect number ``attempt`` (0 for the first retry).

    ``base * 2**attempt`` capped at ``cap``, then jittered down to between half and all of it,
    so node hosts that lost the same gateway do not all come back in the same instant.
    """
    ceiling: float = min(cap, base * 2.0 ** min(attempt, 32))
    jitter: float = (rng or random).random()
    return ceiling * (0.5 + 0.5 * jitter)


def log_text(text: str) -> str:
    """``text`` on one line: every non-printable character (newlines, CR, escape sequences,
    Unicode line separators) written as its escape (``\\n``, ``\\x1b``, ``\\u2028``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
