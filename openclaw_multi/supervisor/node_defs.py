"""Node host definitions on disk, and where each supervised node host's files live.

``<home>/.openclaw-supervisor/nodes.json`` (mode 0600, always written atomically)::

    {"version": 1, "nodes": {"laptop": {"url": "ws://gw:18789/", "displayName": null,
      "desired": true}}}

The key is the profile the node host runs as (its config, key and log are that profile's);
``desired`` is kept like a tunnel's, so a restarted supervisor brings back what should run.
No secret is stored here: a token lives in the profile (``<state>/nodehost-token``, 0600).
Per node host, under ``nodes/`` (0700): ``<name>.out`` (the process's stdout/stderr: its
own log is the profile's ``logs/node.log``) and ``<name>.pid`` (for adoption).

A missing or empty file means none. A corrupt one is moved aside to ``nodes.json.corrupt``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from openclaw_multi.errors import UsageError
from openclaw_multi.profiles.atomic import write_file_atomic
from openclaw_multi.profiles.names import parse_profile_name

from .tunnel_defs import SshPid

__all__ = [
    "NodeDefinition",
    "NodeFiles",
    "ProcessPid",
    "check_node_url",
    "load_nodes",
    "parse_node_name",
    "save_nodes",
]

_LOG = logging.getLogger("openclaw.supervisor")

ProcessPid = SshPid
"""``<name>.pid``: pid and start time, the same record a tunnel keeps."""


class NodeDefinition(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One node host as defined by ``openclaw node start``.

    Attributes:
        url: The gateway's ``ws://``/``wss://`` URL.
        display_name: ``--name``, if given.
        desired: Whether it should run.
    """

    url: str
    display_name: str | None = None
    desired: bool = False


class _NodesFile(msgspec.Struct, kw_only=True):
    version: int = 1
    nodes: dict[str, NodeDefinition] = msgspec.field(default_factory=dict)


_DECODER = msgspec.json.Decoder(_NodesFile)
_ENCODER = msgspec.json.Encoder(order="sorted")
_PID_DECODER = msgspec.json.Decoder(ProcessPid)


def parse_node_name(raw: str) -> str:
    """A node host's name: a profile name other than the default.

    Raises:
        UsageError: Not a valid profile name.
    """
    name = parse_profile_name(raw)
    if name is None:
        raise UsageError("a supervised node host needs a named profile (not default)")
    return name


def check_node_url(url: str) -> str:
    """``url`` if it is a usable gateway URL.

    Raises:
        UsageError: Not ``ws://`` or ``wss://`` with a host, or credentials in the URL
            (they would be stored in ``nodes.json`` and shown on the host's command line).
    """
    try:
        parts = urlsplit(url)
        if "@" in parts.netloc:
            # Never echo the URL: it holds a secret.
            raise UsageError(
                "--url must not contain credentials (user:pass@host): use --token instead"
            )
        _ = parts.port
    except ValueError as err:
        raise UsageError(f"invalid --url {url!r}: {err}") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise UsageError(f"invalid --url {url!r}: use ws://host:port/ or wss://host:port/")
    return url


@dataclass(frozen=True)
class NodeFiles:
    """The node host files of one supervisor directory."""

    directory: Path
    """``<home>/.openclaw-supervisor``."""

    @property
    def definitions_path(self) -> Path:
        """``nodes.json``."""
        return self.directory / "nodes.json"

    @property
    def nodes_dir(self) -> Path:
        """``nodes/``: output and pid files."""
        return self.directory / "nodes"

    def out_path(self, name: str) -> Path:
        """The process's stdout and stderr (appended)."""
        return self.nodes_dir / f"{name}.out"

    def pid_path(self, name: str) -> Path:
        """The running node host's pid and start time."""
        return self.nodes_dir / f"{name}.pid"

    def ensure_dir(self) -> None:
        """Create ``nodes/`` (0700)."""
        self.nodes_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.nodes_dir, 0o700)

    def read_pid(self, name: str) -> ProcessPid | None:
        """The recorded process, or None."""
        try:
            return _PID_DECODER.decode(self.pid_path(name).read_bytes())
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None

    def write_pid(self, name: str, pid: ProcessPid) -> None:
        """Record the process (atomic, 0600)."""
        write_file_atomic(self.pid_path(name), msgspec.json.encode(pid), 0o600)

    def remove_pid(self, name: str) -> None:
        """Forget the process (it is gone)."""
        with contextlib.suppress(FileNotFoundError):
            self.pid_path(name).unlink()


def _valid(name: str, definition: NodeDefinition) -> bool:
    try:
        parse_node_name(name)
        check_node_url(definition.url)
    except UsageError:
        return False
    return True


def load_nodes(path: Path) -> dict[str, NodeDefinition]:
    """Read the definitions. Never raises (see the module docstring for bad files)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        _LOG.error("cannot read %s (%s): no node hosts loaded", path, err)
        return {}
    if not raw.strip():
        return {}
    try:
        state = _DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        aside = path.with_name(path.name + ".corrupt")
        _LOG.error("corrupt %s (%s): moved aside to %s", path, err, aside)
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        return {}
    nodes: dict[str, NodeDefinition] = {}
    for name, definition in state.nodes.items():
        if _valid(name, definition):
            nodes[name] = definition
        else:
            _LOG.warning("%s: ignoring invalid node host %r", path, name)
    return nodes


def save_nodes(path: Path, nodes: dict[str, NodeDefinition]) -> None:
    """Write the definitions atomically (mode 0600).

    Raises:
        OSError: The directory is not writable, the disk is full, ...
    """
    write_file_atomic(path, _ENCODER.encode(_NodesFile(nodes=dict(nodes))), 0o600)
