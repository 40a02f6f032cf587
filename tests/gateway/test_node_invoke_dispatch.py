"""``NodeRegistry.invoke`` in process: when the request reaches the node, and what it leaves.

An operator's ``node.invoke`` runs as a task of its connection; a socket closed in the same
loop turn cancels that task before its first step, when no ``finally`` of the coroutine runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from agent_helpers import TOKEN, operator
from conftest import GatewayProcess
from node_fakes import approval, node_conn, node_device, registry_for
from test_gateway_nodes import node

from openclaw_multi.gateway.methods import MethodError
from openclaw_multi.gateway.nodes import NodeRegistry
from openclaw_multi.protocol.handshake import Phase


def _approved_node(tmp_path: Path) -> tuple[NodeRegistry, SimpleNamespace, list[Any]]:
    registry = registry_for(tmp_path, SimpleNamespace(paired={"n1": node_device()}))
    registry.pairing.store.paired["n1"] = approval(["test.echo"])
    sent: list[tuple[str, Any]] = []
    conn = node_conn(["test.echo"], sent)
    registry.node_connected(conn)  # type: ignore[arg-type]
    return registry, conn, sent


def test_an_invoke_cancelled_before_it_starts_sends_nothing_and_leaves_no_pending(
    tmp_path: Path,
) -> None:
    registry, _, sent = _approved_node(tmp_path)

    async def main() -> None:
        task = asyncio.ensure_future(registry.invoke("n1", "test.echo", {}))
        task.cancel()  # the caller's socket closed in the same turn
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert registry.pending == {}
    assert [event for event, _ in sent] == []


def test_an_invoke_is_sent_when_awaited_and_cleaned_up_after_its_answer(tmp_path: Path) -> None:
    registry, conn, sent = _approved_node(tmp_path)

    async def main() -> dict[str, Any]:
        task = asyncio.ensure_future(registry.invoke("n1", "test.echo", {"a": 1}))
        await asyncio.sleep(0)  # its first step dispatches
        assert [event for event, _ in sent] == ["node.invoke.request"]
        request = sent[0][1]
        registry.node_closed(conn)  # type: ignore[arg-type]
        with pytest.raises(MethodError) as failed:
            await task
        assert failed.value.message.startswith("DISCONNECTED")
        return request  # type: ignore[no-any-return]

    request = asyncio.run(main())
    assert request["paramsJSON"] == '{"a":1}'
    assert registry.pending == {}


def test_a_node_gone_between_the_check_and_the_dispatch_is_not_sent_to(tmp_path: Path) -> None:
    registry, conn, sent = _approved_node(tmp_path)

    async def main() -> None:
        call = registry.invoke("n1", "test.echo", {})
        conn.phase = Phase.CLOSING
        with pytest.raises(MethodError) as refused:
            await call
        assert refused.value.code == "UNAVAILABLE" and refused.value.retryable is True
        assert refused.value.details["nodeCommandDispatched"] is False

    asyncio.run(main())
    assert sent == [] and registry.pending == {}


def test_a_failing_disk_never_breaks_node_connect_or_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Connect/close bookkeeping writes paired.json; a full disk is logged, not raised into
    the socket callbacks (where it skipped presence and left invokes waiting for a timeout)."""
    import errno

    from openclaw_multi.gateway import record_store

    registry, conn, _ = _approved_node(tmp_path)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(record_store, "write_file_atomic", disk_full)

    async def main() -> None:
        task = asyncio.ensure_future(registry.invoke("n1", "test.echo", {}))
        await asyncio.sleep(0)  # dispatched
        registry.node_closed(conn)  # type: ignore[arg-type]
        with pytest.raises(MethodError) as failed:
            await task
        assert failed.value.message.startswith("DISCONNECTED")
        registry.node_connected(conn)  # type: ignore[arg-type]
        registry.close()  # the last-seen times, written at shutdown at the latest

    asyncio.run(main())
    assert "n1" in registry.connected and registry.pending == {}
    assert "cannot save node pairing state" in caplog.text


def test_an_approval_that_cannot_be_saved_answers_and_stays_pending(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    """``node.pair.approve`` whose save fails (paired.json cannot be replaced) answers
    UNAVAILABLE naming the cause, keeps the operator's socket (picows used to close it with
    1011) and approves nothing: the request is still pending, as a restart would find it."""
    state = home / ".openclaw-nodes"
    (state / "nodes" / "paired.json").mkdir(parents=True)  # os.replace onto it fails
    (state / "openclaw.json").write_text(json.dumps({"gateway": {"auth": {"mode": "token"}}}))
    env = {"OPENCLAW_PROFILE": "nodes", "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    gw = gateway_factory("nodes", env_extra=env)
    key, nd = node(gw.port, approve=False)
    op = operator(gw.port)
    pending = op.call("node.pair.list")["payload"]["pending"]
    assert [p["nodeId"] for p in pending] == [key.device_id]
    res = op.call("node.pair.approve", {"requestId": pending[0]["requestId"]})
    assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE"
    assert res["error"]["message"] == "cannot save node approvals: Is a directory"
    assert res["error"]["retryable"] is True
    listed = op.call("node.pair.list")["payload"]  # the same socket still serves
    assert listed["paired"] == [] and listed["pending"] == pending
    op.close()
    nd.close()


def test_a_sync_handler_that_raises_answers_internal_error_and_keeps_the_socket(
    tmp_path: Path,
) -> None:
    """Any other exception of a sync handler: UNAVAILABLE ``internal error`` (retryable),
    the traceback logged, the socket kept (picows closed it with 1011)."""
    from test_connection_fuzz import CONNECT, open_connection

    from openclaw_multi.gateway.connection import Connection
    from openclaw_multi.gateway.hub import Gateway
    from openclaw_multi.gateway.methods import Method
    from openclaw_multi.gateway.settings import GatewayOptions, resolve_settings

    def broken(conn: Connection, params: None) -> None:
        raise RuntimeError("a bug")

    async def main() -> None:
        options = GatewayOptions(profile="broken", explicit=True)
        settings = resolve_settings(options, {"HOME": str(tmp_path)})
        settings.paths.state_dir.mkdir(parents=True)
        gateway = Gateway(settings)
        gateway.methods["test.broken"] = Method(broken, None)
        gateway.mark_ready()
        conn, peer = open_connection(gateway)
        conn.on_message(CONNECT)
        assert peer.sent[-1]["ok"] is True
        conn.on_message(json.dumps({"type": "req", "id": "b1", "method": "test.broken"}).encode())
        answer = peer.sent[-1]
        assert answer["id"] == "b1" and answer["ok"] is False
        assert answer["error"]["code"] == "UNAVAILABLE"
        assert answer["error"]["message"] == "internal error"
        assert answer["error"]["retryable"] is True
        assert peer.closed is None
        gateway.chat.close()

    asyncio.run(main())
