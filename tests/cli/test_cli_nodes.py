"""``openclaw nodes ...`` as a person runs it: the console script against a real gateway."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import GatewayProcess, free_port
from device_key import Key
from openclaw_cli import openclaw as run_openclaw
from wire import Wire

from openclaw_multi.cli.nodes_cmds import format_list

pytestmark = pytest.mark.e2e
TOKEN = "cli-nodes-token-" + uuid.uuid4().hex
PROFILE = "nodecli"
NODE_CLIENT = {"id": "node-host", "version": "2026.9.6", "platform": "linux", "mode": "node"}


def openclaw(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_openclaw(home, "--profile", PROFILE, *args)


@pytest.fixture
def gw(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    state = home / f".openclaw-{PROFILE}"
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    gateway = {"port": port, "auth": {"mode": "token", "token": TOKEN}}
    (state / "openclaw.json").write_text(json.dumps({"gateway": gateway}))
    return gateway_factory(PROFILE, port=port)


def connect_node(port: int, key: Key, commands: list[str]) -> Wire:
    wire, res = key.connect(
        port,
        auth={"token": TOKEN},
        role="node",
        scopes=[],
        client={**NODE_CLIENT, "displayName": "Lab box"},
        commands=commands,
    )
    assert res["ok"] is True, res
    return wire


def ok_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


def test_list_approve_and_remove(home: Path, gw: GatewayProcess) -> None:
    key = Key()
    nd = connect_node(gw.port, key, ["system.run", "system.which"])
    listed = ok_json(openclaw(home, "nodes", "list", "--json"))
    (entry,) = listed["nodes"]
    assert entry["nodeId"] == key.device_id and entry["approvalState"] == "pending-approval"
    request_id = entry["pendingRequestId"]
    human = openclaw(home, "nodes")
    assert human.returncode == 0, human.stderr
    assert "pending-approval" in human.stdout and request_id in human.stdout
    assert "openclaw nodes approve" in human.stdout

    approved = openclaw(home, "nodes", "approve", request_id)
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == f"Approved {key.device_id} (system.run,system.which)"
    (entry,) = ok_json(openclaw(home, "nodes", "list", "--json"))["nodes"]
    assert entry["approvalState"] == "approved" and "pendingRequestId" not in entry

    again = openclaw(home, "nodes", "approve", request_id)
    assert again.returncode == 1 and again.stdout == ""
    assert "unknown requestId" in again.stderr and "Traceback" not in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1

    removed = openclaw(home, "nodes", "remove", key.device_id, "--json")
    assert ok_json(removed) == {"nodeId": key.device_id}
    assert nd.closed_with()[0] == 1008
    missing = openclaw(home, "nodes", "remove", key.device_id)
    assert missing.returncode == 1 and "unknown nodeId" in missing.stderr
    assert TOKEN not in missing.stderr + removed.stdout


def test_reject(home: Path, gw: GatewayProcess) -> None:
    key = Key()
    nd = connect_node(gw.port, key, ["test.echo"])
    (entry,) = ok_json(openclaw(home, "nodes", "list", "--json"))["nodes"]
    rejected = openclaw(home, "nodes", "reject", entry["pendingRequestId"])
    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.strip() == f"Rejected {key.device_id}"
    (entry,) = ok_json(openclaw(home, "nodes", "list", "--json"))["nodes"]
    assert entry["approvalState"] == "unapproved"
    nd.close()


def test_unreachable_gateway_is_one_line(home: Path) -> None:
    port = free_port()
    res = openclaw(home, "nodes", "list", "--url", f"ws://127.0.0.1:{port}", "--token", "x")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("group", "default"), [("nodes", "list"), ("devices", "self")])
def test_group_options_belong_to_the_subcommand(home: Path, group: str, default: str) -> None:
    """docs/cli.md: bare ``openclaw nodes`` runs ``list`` without options; ``--json`` is the
    subcommand's, so on the group it is a usage error (exit 2), as for ``devices``."""
    res = openclaw(home, group, "--json")
    assert res.returncode == 2 and "No such option '--json'" in res.stderr
    assert "Traceback" not in res.stderr
    help_text = openclaw(home, group, default, "--help").stdout
    assert "--json" in help_text


def test_format_list() -> None:
    assert format_list({"nodes": []}, now_ms=0) == "No nodes."
    text = format_list(
        {
            "nodes": [
                {
                    "nodeId": "n1",
                    "displayName": "Box",
                    "platform": "linux",
                    "approvalState": "pending-reapproval",
                    "connected": True,
                    "commands": ["a"],
                    "pendingRequestId": "r1",
                    "pendingDeclaredCommands": ["a", "b"],
                },
                {"nodeId": "n2", "approvalState": "approved", "connected": False},
            ]
        },
        now_ms=10_000,
    )
    assert "n1 (Box)" in text and "pending-reapproval" in text and "r1" in text
    assert "a,b" in text and "Awaiting approval (1)" in text
    assert "n2" in text and "approved" in text
