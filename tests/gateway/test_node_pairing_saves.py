"""Node approval decisions are saved before they take effect (gateway/node_pairing.py).

``node.pair.approve``/``reject``/``remove`` and ``node.rename`` build the new state, save
it, then swap it in: when the save fails the operator gets UNAVAILABLE ``cannot save node
approvals: <reason>`` and memory still equals the files, so a restart undoes nothing the
operator was told happened (a removed node used to get its approval back). In-process, with
the atomic writer failing as on a full disk.
"""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from node_fakes import approval, node_conn, node_device, registry_for

from openclaw_multi.gateway import record_store
from openclaw_multi.gateway.devices import PairingStore, TokenEntry
from openclaw_multi.gateway.methods import MethodError
from openclaw_multi.gateway.node_pairing import NodePairingStore
from openclaw_multi.protocol import scopes

DISK_FULL = "cannot save node approvals: No space left on device"


class Setup:
    """A gateway stand-in with node n1 approved for test.echo and asking for test.more."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.devices = PairingStore(state / "devices")
        self.devices.paired["n1"] = node_device(
            role="operator",
            roles=["node", "operator"],  # mixed: remove keeps the operator role
            approved_via="owner",
            tokens=[
                TokenEntry(role="node", token_hash="h1", scopes=[], created_at_ms=1),
                TokenEntry(role="operator", token_hash="h2", scopes=[], created_at_ms=1),
            ],
        )
        self.devices.save_paired()
        self.registry = registry_for(state, self.devices)
        self.pairing = self.registry.pairing
        self.pairing.store.paired["n1"] = approval(["test.echo"], display_name="first")
        self.pairing.store.save_paired()
        self.conn = node_conn(["test.echo", "test.more"], [])
        self.registry.node_connected(self.conn)  # type: ignore[arg-type]
        (self.request_id,) = self.pairing.store.pending
        self.operator = SimpleNamespace(scopes=frozenset({scopes.ADMIN}))

    def call(self, method: str, params: dict[str, Any]) -> Any:
        entry = self.registry.methods()[method]
        return entry.handler(self.operator, msgspec.convert(params, entry.params))

    def memory(self) -> tuple[Any, ...]:
        return (
            msgspec.to_builtins(self.pairing.store.paired),
            msgspec.to_builtins(self.pairing.store.pending),
            msgspec.to_builtins(self.devices.paired),
        )

    def disk(self) -> tuple[Any, ...]:
        """What a restarted gateway would load."""
        nodes = NodePairingStore(self.state / "nodes")
        devices = PairingStore(self.state / "devices")
        return (
            msgspec.to_builtins(nodes.paired),
            msgspec.to_builtins(nodes.pending),
            msgspec.to_builtins(devices.paired),
        )


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def fail_saves(monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(record_store, "write_file_atomic", disk_full)


CALLS = [
    ("node.pair.approve", lambda s: {"requestId": s.request_id}),
    ("node.pair.reject", lambda s: {"requestId": s.request_id}),
    ("node.pair.remove", lambda s: {"nodeId": "n1"}),
    ("node.rename", lambda s: {"nodeId": "n1", "displayName": "second"}),
]


@pytest.mark.parametrize(("method", "params"), CALLS, ids=[c[0] for c in CALLS])
def test_a_decision_that_cannot_be_saved_changes_nothing(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, method: str, params: Any
) -> None:
    before = setup.memory()
    assert before == setup.disk()
    fail_saves(monkeypatch)
    with pytest.raises(MethodError) as failed:
        setup.call(method, params(setup))
    assert (failed.value.code, failed.value.message) == ("UNAVAILABLE", DISK_FULL)
    assert failed.value.retryable is True
    assert setup.memory() == before  # nothing in effect that a restart would undo
    monkeypatch.undo()
    assert setup.disk() == before
    approved = setup.pairing.approved("n1")
    assert approved is not None and approved.commands == ["test.echo"]
    assert approved.display_name == "first"


@pytest.mark.parametrize(("method", "params"), CALLS, ids=[c[0] for c in CALLS])
def test_a_saved_decision_is_in_memory_and_on_disk(setup: Setup, method: str, params: Any) -> None:
    setup.call(method, params(setup))
    assert setup.memory() == setup.disk()
    approved = setup.pairing.approved("n1")
    if method == "node.pair.approve":
        assert approved is not None and approved.commands == ["test.echo", "test.more"]
    elif method == "node.pair.remove":
        assert approved is None and setup.pairing.store.pending == {}
        device = setup.devices.paired["n1"]
        assert device.roles == ["operator"] and [t.role for t in device.tokens] == ["operator"]
    elif method == "node.rename":
        assert approved is not None and approved.display_name == "second"
    else:
        assert setup.pairing.store.pending == {}


def test_remove_whose_device_save_fails_keeps_what_was_saved_and_a_retry_finishes(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The approval is saved first; if the device's role cannot be dropped, memory keeps
    the saved removal (as a restart would) and the operator's retry completes it."""
    real = record_store.write_file_atomic

    def devices_full(path: Path, data: bytes, mode: int = 0o600) -> None:
        if path.parent.name == "devices":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data, mode)

    monkeypatch.setattr(record_store, "write_file_atomic", devices_full)
    with pytest.raises(MethodError) as failed:
        setup.call("node.pair.remove", {"nodeId": "n1"})
    assert failed.value.message == DISK_FULL
    assert setup.memory() == setup.disk()
    assert "n1" not in setup.pairing.store.paired
    assert "node" in setup.devices.paired["n1"].roles
    monkeypatch.undo()
    assert setup.call("node.pair.remove", {"nodeId": "n1"}) == {"nodeId": "n1"}
    assert setup.devices.paired["n1"].roles == ["operator"]
    assert setup.memory() == setup.disk()


def test_connects_and_closes_write_last_seen_times_later_in_one_write(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Last-seen bookkeeping is not an fsynced rewrite per connect and close (that blocked
    the event loop): it is kept in memory and written once, a little later."""

    monkeypatch.setattr(record_store, "BOOKKEEPING_FLUSH_S", 0.05)
    real = record_store.write_file_atomic
    writes: list[str] = []

    def counting(path: Path, data: bytes, mode: int = 0o600) -> None:
        writes.append(f"{path.parent.name}/{path.name}")
        real(path, data, mode)

    monkeypatch.setattr(record_store, "write_file_atomic", counting)

    async def main() -> None:
        for _ in range(20):
            setup.registry.node_closed(setup.conn)  # type: ignore[arg-type]
            setup.registry.node_connected(setup.conn)  # type: ignore[arg-type]
        assert writes == []  # nothing on the loop's time yet
        deadline = asyncio.get_running_loop().time() + 10.0
        while not writes and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    asyncio.run(main())
    # one write per file, however many connects and closes
    assert sorted(writes) == ["nodes/paired.json", "nodes/pending.json"]
    stored = NodePairingStore(setup.state / "nodes").paired["n1"]
    live = setup.pairing.store.paired["n1"]
    assert stored.last_connected_at_ms == live.last_connected_at_ms is not None
    assert stored.last_disconnected_at_ms == live.last_disconnected_at_ms is not None


def test_close_writes_what_is_still_in_memory(setup: Setup) -> None:
    async def main() -> None:
        setup.registry.node_closed(setup.conn)  # type: ignore[arg-type]
        closed_at = setup.pairing.store.paired["n1"].last_disconnected_at_ms
        assert NodePairingStore(setup.state / "nodes").paired["n1"].last_disconnected_at_ms is None
        setup.registry.close()  # the shutdown path, before the timer
        stored = NodePairingStore(setup.state / "nodes").paired["n1"]
        assert closed_at is not None and stored.last_disconnected_at_ms == closed_at

    asyncio.run(main())
