"""Node host definitions on disk, and where each supervised node host's files live.

``<home>/.openclaw-supervisor/nodes.json`` (mode 0600, always written atomically)::

    {"version": 1, "nodes": {"laptop": {"url": "ws://gw:18789/", "displayName": null,
      "desired": true}}}

The key is the profile the node host runs as (its config, key and log are that profile's);
``desired`` is kept like a tunnel's, so a restarted supervisor brings back what should run.
No secret is stored here: a token lives in the profile (``<state>/nodehost-token``, 0600).
Per node host, under ``nodes/`` (0700): ``<name>.out`` (the process's stdout/stderr: its
own log is the profile's ``logs/node.log``) and ``<name>.pid`` (for adoption).

Loading, the pid file and the handling of a bad file are shared with tunnels
(:mod:`.definitions`): a corrupt file is moved aside to ``nodes.json.corrupt``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from openclaw_multi.errors import UsageError
from openclaw_multi.profiles.atomic import write_file_atomic
from openclaw_multi.profiles.names import parse_profile_name

from .definitions import Definition, ProcessPid, UnitFiles, load_definitions

__all__ = [
    "NodeDefinition",
    "NodeFiles",
    "ProcessPid",
    "check_node_url",
    "load_nodes",
    "parse_node_name",
    "save_nodes",
]


class NodeDefinition(Definition, frozen=True, kw_only=True, rename="camel"):
    """One node host as defined by ``openclaw node start``.

    Attributes:
        url: The gateway's ``ws://``/``wss://`` URL.
        display_name: ``--name``, if given.
        desired: Whether it should run.
    """

    url: str
    display_name: str | None = None


class _NodesFile(msgspec.Struct, kw_only=True):
    version: int = 1
    nodes: dict[str, NodeDefinition] = msgspec.field(default_factory=dict)


_DECODER = msgspec.json.Decoder(_NodesFile)
_ENCODER = msgspec.json.Encoder(order="sorted")


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


class NodeFiles(UnitFiles):
    """The node host files of one supervisor directory: ``nodes.json`` and ``nodes/``."""

    definitions_name = "nodes.json"
    units_dir_name = "nodes"

    @property
    def nodes_dir(self) -> Path:
        """``nodes/``: output and pid files."""
        return self.units_dir

    def out_path(self, name: str) -> Path:
        """The process's stdout and stderr (appended)."""
        return self.nodes_dir / f"{name}.out"


def _valid(name: str, definition: NodeDefinition) -> bool:
    try:
        parse_node_name(name)
        check_node_url(definition.url)
    except UsageError:
        return False
    return True


def load_nodes(path: Path) -> dict[str, NodeDefinition]:
    """Read the definitions. Never raises (see the module docstring for bad files)."""
    return load_definitions(path, lambda raw: _DECODER.decode(raw).nodes, _valid, "node host")


def save_nodes(path: Path, nodes: dict[str, NodeDefinition]) -> None:
    """Write the definitions atomically (mode 0600).

    Raises:
        OSError: The directory is not writable, the disk is full, ...
    """
    write_file_atomic(path, _ENCODER.encode(_NodesFile(nodes=dict(nodes))), 0o600)
