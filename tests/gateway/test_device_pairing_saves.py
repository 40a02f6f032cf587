"""Device pairing decisions are saved before they take effect (gateway/devices.py).

``device.pair.approve``/``reject``/``remove`` and ``device.token.revoke`` build the new
state, save it, then swap it in: when the save fails the answer is UNAVAILABLE ``cannot save
device pairing: <reason>`` and memory still equals the files (a removed device, or a revoked
token, used to come back after a restart). In-process, the atomic writer failing as on a
full disk.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from openclaw_multi.gateway import record_store
from openclaw_multi.gateway.devices import (
    DeviceRegistry,
    PairedDevice,
    PairingStore,
    PendingRequest,
    TokenEntry,
)
from openclaw_multi.gateway.methods import MethodError
from openclaw_multi.protocol import scopes

DISK_FULL = "cannot save device pairing: No space left on device"


class Setup:
    """Device d1 paired with an operator token; d2 asking to be paired."""

    def __init__(self, state: Path) -> None:
        self.state = state
        gateway = SimpleNamespace(clients=set())
        self.registry = DeviceRegistry(gateway, state, auto_approve_local=False)  # type: ignore[arg-type]
        store = self.registry.store
        store.paired["d1"] = PairedDevice(
            device_id="d1",
            public_key="pk1",
            role="operator",
            roles=["operator"],
            scopes=[scopes.READ],
            created_at_ms=1,
            approved_at_ms=1,
            tokens=[TokenEntry(role="operator", token_hash="h", scopes=[], created_at_ms=1)],
        )
        now = 10**13  # never older than the pending TTL during the test
        store.pending["r2"] = PendingRequest(
            request_id="r2",
            device_id="d2",
            public_key="pk2",
            role="operator",
            roles=["operator"],
            scopes=[scopes.READ],
            ts=now,
        )
        store.save_paired()
        store.save_pending()
        self.operator = SimpleNamespace(scopes=frozenset({scopes.ADMIN}))

    def call(self, method: str, params: dict[str, Any]) -> Any:
        entry = self.registry.methods()[method]
        return entry.handler(self.operator, msgspec.convert(params, entry.params))

    def memory(self) -> tuple[Any, Any]:
        store = self.registry.store
        return msgspec.to_builtins(store.paired), msgspec.to_builtins(store.pending)

    def disk(self) -> tuple[Any, Any]:
        store = PairingStore(self.state / "devices")
        return msgspec.to_builtins(store.paired), msgspec.to_builtins(store.pending)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    from openclaw_multi.gateway import devices

    monkeypatch.setattr(devices, "_now_ms", lambda: 10**13 + 1)
    return Setup(tmp_path)


CALLS: list[tuple[str, dict[str, str], Callable[[Setup], bool]]] = [
    ("device.pair.approve", {"requestId": "r2"}, lambda s: "d2" in s.registry.store.paired),
    ("device.pair.reject", {"requestId": "r2"}, lambda s: s.registry.store.pending == {}),
    ("device.pair.remove", {"deviceId": "d1"}, lambda s: "d1" not in s.registry.store.paired),
    (
        "device.token.revoke",
        {"deviceId": "d1", "role": "operator"},
        lambda s: s.registry.store.paired["d1"].tokens[0].revoked_at_ms is not None,
    ),
]
IDS = [c[0] for c in CALLS]


@pytest.mark.parametrize(("method", "params", "done"), CALLS, ids=IDS)
def test_a_decision_that_cannot_be_saved_changes_nothing(
    setup: Setup,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    params: dict[str, str],
    done: Callable[[Setup], bool],
) -> None:
    before = setup.memory()
    assert before == setup.disk()

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(record_store, "write_file_atomic", disk_full)
    with pytest.raises(MethodError) as failed:
        setup.call(method, params)
    assert (failed.value.code, failed.value.message) == ("UNAVAILABLE", DISK_FULL)
    assert failed.value.retryable is True
    assert setup.memory() == before and not done(setup)
    monkeypatch.undo()
    assert setup.disk() == before


@pytest.mark.parametrize(("method", "params", "done"), CALLS, ids=IDS)
def test_a_saved_decision_is_in_memory_and_on_disk(
    setup: Setup, method: str, params: dict[str, str], done: Callable[[Setup], bool]
) -> None:
    setup.call(method, params)
    assert done(setup)
    assert setup.memory() == setup.disk()
