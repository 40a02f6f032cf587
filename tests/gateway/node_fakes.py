"""In-process stand-ins for node tests: a gateway with a NodeRegistry, a node connection."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
from agent_helpers import NODE_CLIENT

from openclaw_multi.gateway.devices import PairedDevice
from openclaw_multi.gateway.node_pairing import ApprovedNode
from openclaw_multi.gateway.nodes import NodeRegistry
from openclaw_multi.protocol.connect import ConnectParams
from openclaw_multi.protocol.handshake import Phase


def node_device(**fields: Any) -> PairedDevice:
    """Paired device ``n1`` (key ``pk``) with the node role; ``fields`` override."""
    values: dict[str, Any] = {
        "device_id": "n1",
        "public_key": "pk",
        "role": "node",
        "roles": ["node"],
        "scopes": [],
        "created_at_ms": 1,
        "approved_at_ms": 1,
        "approved_via": "silent",
        **fields,
    }
    return PairedDevice(**values)


def approval(commands: list[str], **fields: Any) -> ApprovedNode:
    """An approved surface of ``commands`` for ``node_device()``."""
    values: dict[str, Any] = {
        "node_id": "n1",
        "device_public_key": "pk",
        "device_created_at_ms": 1,
        "caps": [],
        "commands": commands,
        "created_at_ms": 1,
        "approved_at_ms": 1,
        **fields,
    }
    return ApprovedNode(**values)


def registry_for(state_dir: Path, devices_store: Any) -> NodeRegistry:
    """A NodeRegistry on a gateway stand-in whose device store is ``devices_store``."""
    gateway = SimpleNamespace(
        settings=SimpleNamespace(paths=SimpleNamespace(state_dir=state_dir)),
        devices=SimpleNamespace(store=devices_store),
        clients=set(),
        invalidate_health=lambda: None,
    )
    registry = NodeRegistry(gateway)  # type: ignore[arg-type]
    gateway.nodes = registry
    return registry


def node_conn(commands: list[str], sent: list[tuple[str, Any]]) -> SimpleNamespace:
    """A connected ``role:"node"`` connection of ``n1`` declaring ``commands``; the events
    the gateway sends it are appended to ``sent``."""
    params = msgspec.convert(
        {
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": dict(NODE_CLIENT),
            "role": "node",
            "commands": commands,
        },
        ConnectParams,
    )
    return SimpleNamespace(
        role="node",
        device_id="n1",
        params=params,
        phase=Phase.CONNECTED,
        ip="127.0.0.1",
        connected_at=time.time(),
        send_event=lambda event, payload, *rest: sent.append((event, payload)),
    )
