"""Helpers shared by the gateway tests: a token-auth profile, operators and nodes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import GatewayProcess
from device_key import Key
from wire import Wire

TOKEN = "t0ken-" + uuid.uuid4().hex
NODE_CLIENT = {
    "id": "node-host",
    "version": "2026.9.6",
    "platform": "linux",
    "mode": "node",
    "displayName": "Build box",
}


def start_profile(
    home: Path,
    factory: Callable[..., GatewayProcess],
    config: dict[str, Any] | None = None,
    *,
    profile: str = "agent",
    env: dict[str, str] | None = None,
) -> GatewayProcess:
    """A token-auth gateway for ``profile``; ``config`` merged into its openclaw.json."""
    state = home / f".openclaw-{profile}"
    state.mkdir(exist_ok=True)
    (state / "openclaw.json").write_text(
        json.dumps({"gateway": {"auth": {"mode": "token"}}, **(config or {})})
    )
    env_extra = {"OPENCLAW_PROFILE": profile, "OPENCLAW_GATEWAY_TOKEN": TOKEN, **(env or {})}
    return factory(profile, env_extra=env_extra)


def operator(port: int, **overrides: Any) -> Wire:
    """An operator connection with the shared token; ``overrides`` go into its connect."""
    wire = Wire(port)
    res = wire.hello(auth={"token": TOKEN}, **overrides)
    assert res["ok"] is True, res
    return wire


def node(
    port: int,
    commands: list[str],
    *,
    key: Key | None = None,
    approve: bool = True,
    **connect: Any,
) -> tuple[Key, Wire]:
    """A node declaring ``commands``; ``approve``: an operator approves them
    (node.pair.approve). ``connect``: more fields of its connect."""
    key = key or Key()
    wire, res = key.connect(
        port,
        auth={"token": TOKEN},
        role="node",
        scopes=[],
        client=dict(NODE_CLIENT),
        caps=["system", "test"],
        commands=commands,
        **connect,
    )
    assert res["ok"] is True, res
    assert res["payload"]["auth"]["role"] == "node"
    if approve:
        approve_pending(port, key.device_id)
    return key, wire


def approve_pending(port: int, node_id: str) -> dict[str, Any]:
    """Approve ``node_id``'s pending surface (raised while its connect was answered)."""
    op = operator(port)
    pending = op.call("node.pair.list")["payload"]["pending"]
    mine = [p for p in pending if p["nodeId"] == node_id]
    assert len(mine) == 1, pending
    res = op.call("node.pair.approve", {"requestId": mine[0]["requestId"]})
    assert res["ok"] is True, res
    op.close()
    return res["payload"]  # type: ignore[no-any-return]


def next_event(wire: Wire, name: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        frame = wire.recv(max(0.05, deadline - time.monotonic()))
        if frame.get("type") == "event" and frame.get("event") == name:
            return frame["payload"]  # type: ignore[no-any-return]


def answer_invoke(nd: Wire, node_id: str, payload: Any = None, error: Any = None) -> dict[str, Any]:
    """Serve the next node.invoke.request on ``nd``; return the request."""
    request = next_event(nd, "node.invoke.request")
    result: dict[str, Any] = {"id": request["id"], "nodeId": node_id, "ok": error is None}
    if error is None:
        result["payloadJSON"] = json.dumps(payload)
    else:
        result["error"] = error
    assert nd.call("node.invoke.result", result)["ok"] is True
    return request


class AgentCall:
    """One ``agent`` request: its two responses and the events seen in between."""

    def __init__(self, wire: Wire, params: dict[str, Any], timeout: float = 15.0) -> None:
        self.req_id = wire.request("agent", params)
        self.responses: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(self.responses) < 2:
            frame = wire.recv(max(0.05, deadline - time.monotonic()))
            if frame.get("type") == "res" and frame["id"] == self.req_id:
                self.responses.append(frame)
                if not frame["ok"] and len(self.responses) == 1:
                    break  # refused before acceptance: one response only
            elif frame.get("type") == "event":
                self.events.append(frame)

    @property
    def accepted(self) -> dict[str, Any]:
        return self.responses[0]

    @property
    def final(self) -> dict[str, Any]:
        return self.responses[-1]

    def stream(self, event: str, stream: str | None = None) -> list[dict[str, Any]]:
        return [
            e["payload"]
            for e in self.events
            if e["event"] == event and (stream is None or e["payload"].get("stream") == stream)
        ]
