"""Device pairing decisions are saved before they take effect (gateway/devices.py).

``device.pair.approve``/``reject``/``remove`` and ``device.token.revoke`` build the new
state, save it, then swap it in: when the save fails the answer is UNAVAILABLE ``cannot save
device pairing: <reason>`` and memory still equals the files (a removed device, or a revoked
token, used to come back after a restart). In-process, the atomic writer failing as on a
full disk.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from device_key import Key

from openclaw_multi.gateway import record_store
from openclaw_multi.gateway.devices import (
    DeviceRegistry,
    PairedDevice,
    PairingStore,
    PendingRequest,
    TokenEntry,
)
from openclaw_multi.gateway.methods import MethodError
from openclaw_multi.protocol import device as d
from openclaw_multi.protocol import scopes
from openclaw_multi.protocol.connect import ConnectParams
from openclaw_multi.protocol.device import DeviceAccepted
from openclaw_multi.protocol.frames import ErrorShape
from openclaw_multi.protocol.handshake import Accepted, Rejected

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


# -- connects: a token issued is saved at once, "seen" bookkeeping later -------------------------
NOW = 10**13 + 1
DEVICE_TOKEN = "device-token-for-k"


def paired_key(setup: Setup) -> Key:
    """A real key, paired as an operator device with DEVICE_TOKEN (saved)."""
    key = Key()
    store = setup.registry.store
    store.paired[key.device_id] = PairedDevice(
        device_id=key.device_id,
        public_key=key.public_key,
        role="operator",
        roles=["operator"],
        scopes=[scopes.READ],
        created_at_ms=1,
        approved_at_ms=1,
        tokens=[
            TokenEntry(
                role="operator",
                token_hash=d.hash_token(DEVICE_TOKEN),
                scopes=[scopes.READ],
                created_at_ms=1,
            )
        ],
    )
    store.save_paired()
    return key


def authorize(setup: Setup, key: Key, base: Accepted | Rejected, auth: dict[str, str]) -> Any:
    challenge = {"payload": {"nonce": "nonce-1", "ts": NOW}}
    params = msgspec.convert(key.params(challenge, auth=auth, scopes=[scopes.READ]), ConnectParams)
    conn = SimpleNamespace(ip="127.0.0.1")
    return setup.registry.authorize(
        conn,  # type: ignore[arg-type]
        params,
        base,
        nonce="nonce-1",
        local=True,
    )


SHARED_SECRET_OK = Accepted(protocol=4, role="operator", scopes=frozenset(), method="token")
SHARED_SECRET_WRONG = Rejected(
    ErrorShape(code="INVALID_REQUEST", message="unauthorized"), 1008, auth_failure=True
)


def counting_writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    real = record_store.write_file_atomic
    writes: list[str] = []

    def counting(path: Path, data: bytes, mode: int = 0o600) -> None:
        writes.append(f"{path.parent.name}/{path.name}")
        real(path, data, mode)

    monkeypatch.setattr(record_store, "write_file_atomic", counting)
    return writes


def test_device_token_connects_write_last_seen_later_in_one_write(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connect with the device token changes only bookkeeping (lastSeenAtMs, remoteIp, the
    token's lastUsedAtMs): no fsynced rewrite on the event loop per connect, one write later."""
    key = paired_key(setup)
    monkeypatch.setattr(record_store, "BOOKKEEPING_FLUSH_S", 0.05)
    writes = counting_writes(monkeypatch)

    async def main() -> None:
        for _ in range(20):
            res = authorize(setup, key, SHARED_SECRET_WRONG, {"deviceToken": DEVICE_TOKEN})
            assert isinstance(res, DeviceAccepted) and res.method == "device-token", res
        assert writes == []  # nothing on the loop's time yet
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while not writes and loop.time() < deadline:
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert writes == ["devices/paired.json"]  # one write, however many connects
    stored = PairingStore(setup.state / "devices").paired[key.device_id]
    assert stored.last_seen_at_ms == NOW and stored.remote_ip == "127.0.0.1"
    assert stored.tokens[0].last_used_at_ms == NOW
    assert setup.memory() == setup.disk()


def test_flush_writes_the_bookkeeping_still_in_memory(setup: Setup) -> None:
    key = paired_key(setup)

    async def main() -> None:
        authorize(setup, key, SHARED_SECRET_WRONG, {"deviceToken": DEVICE_TOKEN})
        assert PairingStore(setup.state / "devices").paired[key.device_id].last_seen_at_ms is None
        setup.registry.flush()  # the shutdown path, before the timer
        assert setup.memory() == setup.disk()

    asyncio.run(main())


def test_a_token_issued_at_connect_is_saved_before_the_answer(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = paired_key(setup)
    writes = counting_writes(monkeypatch)

    async def main() -> None:
        res = authorize(setup, key, SHARED_SECRET_OK, {"token": "the shared secret"})
        assert isinstance(res, DeviceAccepted) and res.device_token, res
        # on disk now, with no timer run: a SIGKILL after hello-ok keeps the token
        assert writes == ["devices/paired.json"]
        [entry] = PairingStore(setup.state / "devices").paired[key.device_id].tokens
        assert entry.token_hash == d.hash_token(res.device_token)

    asyncio.run(main())
    assert setup.memory() == setup.disk()


def test_a_token_that_cannot_be_saved_refuses_the_connect_and_keeps_the_old_one(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = paired_key(setup)
    before = setup.disk()

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(record_store, "write_file_atomic", disk_full)
    res = authorize(setup, key, SHARED_SECRET_OK, {"token": "the shared secret"})
    assert isinstance(res, Rejected)
    assert (res.error.code, res.error.message, res.error.retryable) == (
        "UNAVAILABLE",
        DISK_FULL,
        True,
    )
    [entry] = setup.registry.store.paired[key.device_id].tokens
    assert entry.token_hash == d.hash_token(DEVICE_TOKEN)  # the old token still works
    monkeypatch.undo()
    assert setup.disk() == before
