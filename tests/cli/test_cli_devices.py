"""``openclaw devices ...`` as a person runs it: the console script against a real gateway."""

from __future__ import annotations

import json
import stat
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GatewayProcess, free_port
from device_key import Key, assert_refused
from openclaw_cli import openclaw as run_openclaw

from openclaw_multi.cli.devices_cmds import format_list

pytestmark = pytest.mark.e2e
TOKEN = "cli-dev-token-" + uuid.uuid4().hex
PROFILE = "pair"


def openclaw(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_openclaw(home, "--profile", PROFILE, *args)


def start(
    home: Path, factory: Callable[..., GatewayProcess], *, auto_approve: bool
) -> GatewayProcess:
    state = home / f".openclaw-{PROFILE}"
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    gateway = {
        "port": port,
        "auth": {"mode": "token", "token": TOKEN},
        "nodes": {"pairing": {"autoApproveLocal": auto_approve}},
    }
    (state / "openclaw.json").write_text(json.dumps({"gateway": gateway}))
    return factory(PROFILE, port=port)


def ok_json(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


def test_self_shows_a_stable_private_identity(home: Path) -> None:
    first = ok_json(openclaw(home, "devices", "self", "--json"))
    assert first == ok_json(openclaw(home, "devices", "self", "--json"))
    plain = openclaw(home, "devices")
    assert plain.returncode == 0 and str(first["deviceId"]) in plain.stdout
    path = Path(str(first["path"]))
    assert path == home / f".openclaw-{PROFILE}" / "identity" / "cli-device.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cli_pairs_itself_locally_and_keeps_its_token(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    gw = start(home, gateway_factory, auto_approve=True)
    me = ok_json(openclaw(home, "devices", "self", "--json"))["deviceId"]
    listed = ok_json(openclaw(home, "devices", "list", "--json"))
    paired = listed["paired"]
    assert isinstance(paired, list)
    assert [p["deviceId"] for p in paired] == [me]
    tokens = gw.state_dir / "identity" / "cli-device-auth.json"
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    stored = json.loads(tokens.read_text())
    assert stored["deviceId"] == me and len(stored["tokens"]) == 1
    human = openclaw(home, "devices", "list")
    assert human.returncode == 0 and "Paired (1)" in human.stdout and me in human.stdout


def test_approve_reject_remove_revoke(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    gw = start(home, gateway_factory, auto_approve=False)
    key = Key()
    wire, res = key.connect(gw.port, auth={"token": TOKEN})
    request_id = assert_refused(wire, res, "PAIRING_REQUIRED")["details"]["requestId"]

    listed = ok_json(openclaw(home, "devices", "list", "--json"))
    pending = listed["pending"]
    assert isinstance(pending, list)
    # The CLI's own key waits too (auto-approval is off); it got in with the shared token.
    assert request_id in [p["requestId"] for p in pending]
    human = openclaw(home, "devices", "list")
    assert "Pending (2)" in human.stdout and request_id in human.stdout

    approved = openclaw(home, "devices", "approve", request_id)
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == f"Approved {key.device_id}"
    wire, res = key.connect(gw.port, auth={"token": TOKEN})
    issued = res["payload"]["auth"]["deviceToken"]
    wire.close()

    revoked = ok_json(openclaw(home, "devices", "revoke", key.device_id, "--json"))
    assert revoked["deviceId"] == key.device_id and revoked["role"] == "operator"
    wire, res = key.connect(gw.port, auth={"deviceToken": issued})
    assert_refused(wire, res, "AUTH_DEVICE_TOKEN_MISMATCH")

    removed = openclaw(home, "devices", "remove", key.device_id)
    assert removed.stdout.strip() == f"Removed {key.device_id}"
    again = openclaw(home, "devices", "remove", key.device_id)
    assert again.returncode == 1
    assert again.stderr.strip() == "error: INVALID_REQUEST: unknown deviceId"

    unknown = openclaw(home, "devices", "reject", "no-such-request")
    assert unknown.returncode == 1 and "unknown requestId" in unknown.stderr


def test_format_list_pure() -> None:
    text = format_list(
        {
            "pending": [
                {
                    "requestId": "r-1",
                    "deviceId": "abc",
                    "displayName": "Phone",
                    "clientId": "openclaw-ios",
                    "platform": "ios",
                    "role": "operator",
                    "scopes": ["operator.read"],
                    "remoteIp": "10.0.0.2",
                    "ts": 1_000,
                }
            ],
            "paired": [],
        },
        now_ms=61_000,
    )
    assert text.splitlines()[0] == "Pending (1)"
    assert "r-1" in text and "abc (Phone)" in text and "1m 0s ago" in text
    assert text.splitlines()[-1] == "Paired (0)"
