"""The commands a node host serves, by name, and the small ``system.*`` ones.

A command is a function of its decoded params and an :class:`Invocation`; it returns the
payload (any JSON value) or raises :class:`CommandError` with the ``{code, message}`` the node
answers with. Most are async (they run as tasks and may be cancelled); the few cheap ones that
never block (``system.info``, ``system.notify``) are *inline*: the host runs them in the
socket's callback and answers before the loop turns, which is the node's share of the
``node.invoke`` latency. :func:`build_registry` decides what this node declares in its connect
(``caps``/``commands``): only what it serves. Anything else is refused with UNAVAILABLE
``command not supported``, the reference node host's answer.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from ... import __version__
from .rules import log_text

__all__ = [
    "CommandError",
    "Invocation",
    "NodeSettings",
    "Registry",
    "build_registry",
    "decode_params",
]

LOG = logging.getLogger("openclaw.node")
_decoder: Final = msgspec.json.Decoder()


class CommandError(Exception):
    """A refusal or failure, answered as ``{ok:false, error:{code, message}}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class NodeSettings:
    """What this node host may do (from the profile's ``nodeHost`` section).

    Attributes:
        display_name: How operators see this node.
        fs_roots: Canonical roots ``fs.*`` may read below (empty: none).
        run_allowlist: Programs ``system.run`` may start (names or absolute paths).
        run_timeout_ms: Default and ceiling for ``system.run`` (a request may ask for less).
        output_cap_bytes: Bytes kept per output stream, and the most ``fs.read`` returns.
        path_env: The ``PATH`` for program lookups and children.
    """

    display_name: str
    fs_roots: tuple[str, ...] = ()
    run_allowlist: tuple[str, ...] = ()
    run_timeout_ms: int = 30_000
    output_cap_bytes: int = 65_536
    path_env: str = field(default_factory=lambda: os.environ.get("PATH", os.defpath))


@dataclass
class Invocation:
    """One ``node.invoke.request`` being served."""

    id: str
    command: str
    timeout_ms: int | None
    settings: NodeSettings


Handler = Callable[[dict[str, Any], Invocation], Awaitable[Any]]
InlineHandler = Callable[[dict[str, Any], Invocation], Any]


@dataclass(frozen=True)
class Registry:
    """Commands by name (async ones, and inline ones that never block), and their ``caps``."""

    handlers: dict[str, Handler]
    inline: dict[str, InlineHandler]
    caps: tuple[str, ...]

    @property
    def commands(self) -> tuple[str, ...]:
        """The declared command names, sorted."""
        return tuple(sorted([*self.handlers, *self.inline]))


def decode_params(params_json: object) -> dict[str, Any]:
    """``paramsJSON`` as a dict (null or absent: ``{}``).

    Raises:
        CommandError: INVALID_REQUEST when it is not a JSON object.
    """
    if params_json is None or params_json == "":
        return {}
    if not isinstance(params_json, str):
        raise CommandError("INVALID_REQUEST", "paramsJSON must be a JSON string")
    try:
        value = _decoder.decode(params_json)
    except msgspec.DecodeError:
        raise CommandError("INVALID_REQUEST", "paramsJSON malformed JSON") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CommandError("INVALID_REQUEST", "params must be an object")
    return value


# -- system.* ---------------------------------------------------------------------------------
def _info_handler(settings: NodeSettings, commands: tuple[str, ...]) -> InlineHandler:
    started = time.monotonic()
    static = {
        "displayName": settings.display_name,
        "hostname": socket.gethostname(),
        "platform": sys.platform,
        "os": platform.system(),
        "release": platform.release(),
        "arch": platform.machine(),
        "cpuCount": os.cpu_count(),
        "python": platform.python_version(),
        "version": __version__,
        "pid": os.getpid(),
        "commands": list(commands),
        "fsRoots": list(settings.fs_roots),
        "runAllowlist": list(settings.run_allowlist),
        "runTimeoutMs": settings.run_timeout_ms,
        "outputCapBytes": settings.output_cap_bytes,
    }

    def system_info(params: dict[str, Any], inv: Invocation) -> Any:
        return {**static, "uptimeMs": int((time.monotonic() - started) * 1000)}

    return system_info


def system_notify(params: dict[str, Any], inv: Invocation) -> Any:
    """``system.notify`` {title, body, priority?}: written to the node's log (no desktop here)."""
    title = params.get("title")
    body = params.get("body")
    title = title.strip() if isinstance(title, str) else ""
    body = body.strip() if isinstance(body, str) else ""
    if not title and not body:
        raise CommandError("INVALID_REQUEST", "empty notification")
    priority = params.get("priority")
    if priority is not None and priority not in ("passive", "active", "timeSensitive"):
        raise CommandError("INVALID_REQUEST", "priority must be passive, active or timeSensitive")
    LOG.info(
        "notification (%s): %s%s%s",
        priority or "active",
        log_text(title),  # the gateway's caller wrote these: no forged log lines
        " - " if title and body else "",
        log_text(body),
    )
    return {"ok": True}


async def system_which(params: dict[str, Any], inv: Invocation) -> Any:
    """``system.which`` {bins:[name]}: ``{bins:{name: path}}``, missing names left out."""
    bins = params.get("bins")
    if not isinstance(bins, list) or not all(isinstance(b, str) for b in bins):
        raise CommandError("INVALID_REQUEST", "bins must be a list of names")
    found: dict[str, str] = {}
    for name in bins:
        name = name.strip()
        if not name or os.sep in name:
            continue
        path = shutil.which(name, path=inv.settings.path_env)
        if path is not None:
            found[name] = path
    return {"bins": found}


def build_registry(settings: NodeSettings) -> Registry:
    """The commands this node serves: ``system.*`` always, ``fs.*`` when roots are set,
    ``system.run`` when the allowlist is not empty."""
    from .fs_commands import fs_list, fs_read
    from .run_command import system_run

    handlers: dict[str, Handler] = {"system.which": system_which}
    inline: dict[str, InlineHandler] = {"system.notify": system_notify}
    caps = ["system"]
    if settings.run_allowlist:
        handlers["system.run"] = system_run
    if settings.fs_roots:
        handlers["fs.list"] = fs_list
        handlers["fs.read"] = fs_read
        caps.append("file")
    commands = tuple(sorted([*handlers, *inline, "system.info"]))
    inline["system.info"] = _info_handler(settings, commands)
    return Registry(handlers, inline, tuple(caps))
