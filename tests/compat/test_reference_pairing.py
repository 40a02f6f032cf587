"""Device pairing with the real OpenClaw clients (2026.9.6) against a gateway of ours.

* ``openclaw-ref devices list|approve|remove --url ... --token ...``: the reference CLI drives
  our ``device.pair.*`` methods (it sends no device block itself on these calls).
* ``openclaw-ref node run``: the real node host signs its connect with its own Ed25519 key (v3
  string, ``node-host|node|node||...``). Our gateway verifies that signature, raises a
  pairing request (the host reports "device pairing required (requestId: ...)" and pauses
  until an operator acts); once approved, the host connects as a node and is handed a device
  token (only its hash is stored). Paired, it serves ``node.invoke`` (``system.which``,
  ``system.run``).

Skipped without the reference client (``./scripts/setup-reference-client``); failed in CI.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GatewayProcess
from device_key import Key, assert_refused
from reference import Result, client_env, run, start, stop
from wire import Wire

from openclaw_multi.protocol.device import b64url_decode

pytestmark = pytest.mark.e2e

TOKEN = "ref-pair-" + uuid.uuid4().hex
NODE_START_S = 150.0  # the node host loads its plugins first (about 40 s on a small VM)


@pytest.fixture
def pairing_gateway(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    """A token gateway that asks an operator before letting any new device in."""
    state = home / ".openclaw-refpair"
    state.mkdir()
    config = {"auth": {"mode": "token"}, "nodes": {"pairing": {"autoApproveLocal": False}}}
    (state / "openclaw.json").write_text(json.dumps({"gateway": config}))
    env = {"OPENCLAW_PROFILE": "refpair", "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    return gateway_factory("refpair", env_extra=env)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return client_env(tmp_path / "client-home")


@pytest.fixture
def node_hosts(reference_cli: Path, cli_env: dict[str, str]) -> Iterator[Callable[[int], Any]]:
    """Start ``openclaw-ref node run`` in its own process group; every one is killed after."""
    started: list[subprocess.Popen[bytes]] = []

    def start_host(port: int) -> subprocess.Popen[bytes]:
        env = dict(cli_env, OPENCLAW_GATEWAY_TOKEN=TOKEN)
        proc = start(env, "node", "run", "--host", "127.0.0.1", "--port", str(port))
        started.append(proc)
        return proc

    yield start_host
    for proc in started:
        stop(proc)


def run_cli(env: dict[str, str], *args: str) -> Result:
    return run(env, *args, timeout=90)


def wait_for_event(wire: Wire, name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {name} event within {timeout}s")
        try:
            frame = wire.recv(min(left, 5.0))
        except TimeoutError:
            continue
        if frame.get("type") == "event" and frame.get("event") == name:
            return frame["payload"]  # type: ignore[no-any-return]


def nodes_connected(wire: Wire) -> int:
    res = wire.call("health", {"probe": True})
    return int(res["payload"]["connections"]["nodes"])


def test_reference_cli_lists_approves_and_removes(
    pairing_gateway: GatewayProcess, reference_cli: Path, cli_env: dict[str, str]
) -> None:
    key = Key()
    wire, res = key.connect(pairing_gateway.port, auth={"token": TOKEN})
    request_id = assert_refused(wire, res, "PAIRING_REQUIRED")["details"]["requestId"]
    flags = ("--url", f"ws://127.0.0.1:{pairing_gateway.port}", "--token", TOKEN)

    listed = run_cli(cli_env, "devices", "list", *flags, "--json")
    assert listed.returncode == 0, listed.stderr
    pending = json.loads(listed.stdout)["pending"]
    assert [p["requestId"] for p in pending] == [request_id]
    human = run_cli(cli_env, "devices", "list", *flags)
    assert human.returncode == 0 and request_id in human.stdout and "new pairing" in human.stdout

    approved = run_cli(cli_env, "devices", "approve", request_id, *flags)
    assert approved.returncode == 0, approved.stderr
    assert f"Approved {key.device_id} ({request_id})" in approved.stdout
    wire, res = key.connect(pairing_gateway.port, auth={"token": TOKEN})
    assert res["ok"] is True and res["payload"]["auth"]["deviceToken"]
    wire.close()

    removed = run_cli(cli_env, "devices", "remove", key.device_id, *flags)
    assert removed.returncode == 0, removed.stderr
    assert f"Removed {key.device_id}" in removed.stdout


@pytest.mark.timeout(2 * NODE_START_S + 60)
def test_reference_node_host_pairs(
    pairing_gateway: GatewayProcess, node_hosts: Callable[[int], Any]
) -> None:
    operator = Wire(pairing_gateway.port)
    assert operator.hello(auth={"token": TOKEN})["ok"] is True

    first = node_hosts(pairing_gateway.port)
    request = wait_for_event(operator, "device.pair.requested", NODE_START_S)
    # Reaching pairing at all means its signed v3 string verified against ours.
    assert request["clientId"] == "node-host" and request["clientMode"] == "node"
    assert request["role"] == "node" and request["scopes"] == []
    public_raw = b64url_decode(request["publicKey"])
    assert request["deviceId"] == hashlib.sha256(public_raw).hexdigest()
    stop(first)

    approved = operator.call("device.pair.approve", {"requestId": request["requestId"]})
    assert approved["ok"] is True, approved

    node_hosts(pairing_gateway.port)
    deadline = time.monotonic() + NODE_START_S
    while nodes_connected(operator) != 1:
        assert time.monotonic() < deadline, "the approved node host never connected"
        time.sleep(1.0)
    paired = json.loads((pairing_gateway.state_dir / "devices" / "paired.json").read_text())
    record = paired[request["deviceId"]]
    assert record["roles"] == ["node"] and record["clientId"] == "node-host"
    assert [t["role"] for t in record["tokens"]] == ["node"]
    assert TOKEN not in json.dumps(paired)
    operator.close()


@pytest.mark.timeout(NODE_START_S + 60)
def test_reference_node_host_answers_node_invoke(
    home: Path, gateway_factory: Callable[..., GatewayProcess], node_hosts: Callable[[int], Any]
) -> None:
    """Paired on the spot (loopback, local auto-approval), the real node host's command
    surface still waits for an operator (as the reference's would); approved, it serves
    ``system.which`` and ``system.run`` through our ``node.invoke`` (docs/protocol.md, Nodes)."""
    state = home / ".openclaw-refnode"
    state.mkdir()
    (state / "openclaw.json").write_text(json.dumps({"gateway": {"auth": {"mode": "token"}}}))
    env = {"OPENCLAW_PROFILE": "refnode", "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    gateway = gateway_factory("refnode", env_extra=env)
    operator = Wire(gateway.port)
    assert operator.hello(auth={"token": TOKEN})["ok"] is True

    node_hosts(gateway.port)
    deadline = time.monotonic() + NODE_START_S
    while True:
        listed = operator.call("node.list")["payload"]["nodes"]
        connected = [n for n in listed if n["connected"]]
        if connected:
            break
        assert time.monotonic() < deadline, "the node host never connected"
        time.sleep(1.0)  # waiting on an outside process's start, not synchronising with ours
    node = connected[0]
    assert node["clientId"] == "node-host" and node["clientMode"] == "node"
    assert node["approvalState"] == "pending-approval" and node["commands"] == [], node
    assert "system.which" in node["pendingDeclaredCommands"], node
    early = {
        "nodeId": node["nodeId"],
        "command": "system.which",
        "params": {"bins": ["sh"]},
        "idempotencyKey": str(uuid.uuid4()),
    }
    res = operator.response(operator.request("node.invoke", early), timeout=35.0)
    assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE", res
    assert (
        res["error"]["retryable"] is True
        and "awaiting operator approval" in res["error"]["message"]
    )
    pending = operator.call("node.pair.list")["payload"]["pending"]
    assert [p["nodeId"] for p in pending] == [node["nodeId"]]
    # it declares system.run: approving takes operator.admin, as in the reference
    assert pending[0]["requiredApproveScopes"] == ["operator.pairing", "operator.admin"]
    approved = operator.call("node.pair.approve", {"requestId": pending[0]["requestId"]})
    assert approved["ok"] is True, approved
    node = operator.call("node.describe", {"nodeId": node["nodeId"]})["payload"]
    assert node["approvalState"] == "approved" and "system.which" in node["commands"], node

    call = {
        "nodeId": node["nodeId"],
        "command": "system.which",
        "params": {"bins": ["sh"]},
        "idempotencyKey": str(uuid.uuid4()),
        "timeoutMs": 30_000,
    }
    res = operator.response(operator.request("node.invoke", call), timeout=35.0)
    assert res["ok"] is True, res
    payload = res["payload"]
    assert payload["ok"] is True and payload["nodeId"] == node["nodeId"]
    assert payload["command"] == "system.which"
    assert payload["payload"]["bins"]["sh"].endswith("/sh"), payload

    call = {
        "nodeId": node["nodeId"],
        "command": "system.run",
        "params": {"command": ["echo", "hi"]},
        "idempotencyKey": str(uuid.uuid4()),
        "timeoutMs": 30_000,
    }
    res = operator.response(operator.request("node.invoke", call), timeout=35.0)
    assert res["ok"] is True, res
    ran = res["payload"]["payload"]
    assert ran["exitCode"] == 0 and ran["success"] is True and ran["stdout"] == "hi\n", ran
    operator.close()
