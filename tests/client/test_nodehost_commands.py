"""Node host commands and invoke handling without a gateway (client/nodehost/).

The registry, params decoding, fs and run commands called directly, and the host's
invoke/cancel handling driven with a stand-in link that records what would be sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import wait_until

from openclaw_multi.client.nodehost.commands import (
    CommandError,
    Invocation,
    NodeSettings,
    build_registry,
    decode_params,
)
from openclaw_multi.client.nodehost.fs_commands import fs_list, fs_read
from openclaw_multi.client.nodehost.host import NodeHost, NodeLink
from openclaw_multi.client.nodehost.rules import canonical_roots
from openclaw_multi.client.nodehost.run_command import system_run
from openclaw_multi.protocol.frames import IncomingEvent


def settings(tmp_path: Path, **overrides: Any) -> NodeSettings:
    values: dict[str, Any] = {
        "display_name": "unit",
        "fs_roots": canonical_roots([str(tmp_path)]),
        "run_allowlist": ("echo", sys.executable),
        "run_timeout_ms": 10_000,
        "output_cap_bytes": 64,
    }
    values.update(overrides)
    return NodeSettings(**values)


def inv(s: NodeSettings, command: str = "x") -> Invocation:
    return Invocation("id-1", command, None, s)


def test_registry_declares_only_what_is_configured(tmp_path: Path) -> None:
    bare = build_registry(settings(tmp_path, fs_roots=(), run_allowlist=()))
    assert bare.commands == ("system.info", "system.notify", "system.which")
    assert bare.caps == ("system",)
    full = build_registry(settings(tmp_path))
    assert full.commands == (
        "fs.list",
        "fs.read",
        "system.info",
        "system.notify",
        "system.run",
        "system.which",
    )
    assert full.caps == ("system", "file")
    assert set(full.inline) == {"system.info", "system.notify"}  # answered without a task


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, {}), ("", {}), ("null", {}), ('{"a": 1}', {"a": 1})],
)
def test_decode_params(raw: object, expected: dict[str, Any]) -> None:
    assert decode_params(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{", "paramsJSON malformed JSON"),
        ("[1]", "params must be an object"),
        ('"x"', "params must be an object"),
        (5, "paramsJSON must be a JSON string"),
    ],
)
def test_decode_params_refusals(raw: object, message: str) -> None:
    with pytest.raises(CommandError) as err:
        decode_params(raw)
    assert (err.value.code, err.value.message) == ("INVALID_REQUEST", message)


def test_system_info_and_notify(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = settings(tmp_path)
    registry = build_registry(s)
    info = registry.inline["system.info"]({}, inv(s))
    assert info["displayName"] == "unit" and info["pid"] == os.getpid()
    assert info["commands"] == list(registry.commands) and info["fsRoots"] == list(s.fs_roots)
    notify = registry.inline["system.notify"]
    with caplog.at_level("INFO", logger="openclaw.node"):
        assert notify({"body": " hi ", "priority": "passive"}, inv(s)) == {"ok": True}
    assert "notification (passive): hi" in caplog.text
    for params, message in [
        ({}, "empty notification"),
        ({"title": 3}, "empty notification"),
        ({"title": "t", "priority": "loud"}, "priority must be passive, active or timeSensitive"),
    ]:
        with pytest.raises(CommandError) as err:
            notify(params, inv(s))
        assert err.value.message == message


def test_notify_text_cannot_forge_log_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = settings(tmp_path)
    notify = build_registry(s).inline["system.notify"]
    forged = "2026-01-01 00:00:00,000 WARNING openclaw.node: forged"
    params = {"title": f"t\n{forged}", "body": f"b\r\x1b[2J\u2028{forged}"}
    with caplog.at_level("INFO", logger="openclaw.node"):
        assert notify(params, inv(s)) == {"ok": True}
    (record,) = caplog.records
    line = record.getMessage()
    assert line.splitlines() == [line]
    assert line == (f"notification (active): t\\n{forged} - b\\r\\x1b[2J\\u2028{forged}")


def test_system_which(tmp_path: Path) -> None:
    s = settings(tmp_path, path_env=os.path.dirname(sys.executable))
    which = build_registry(s).handlers["system.which"]
    name = os.path.basename(sys.executable)
    found = asyncio.run(which({"bins": [name, "nope-x", "", "a/b"]}, inv(s)))
    assert found == {"bins": {name: sys.executable}}
    with pytest.raises(CommandError):
        asyncio.run(which({"bins": "python"}, inv(s)))


def test_fs_list_and_read_directly(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_bytes(b"\xffbinary")
    (tmp_path / "a.json").write_text("{}")
    os.mkfifo(tmp_path / "fifo")  # must be refused, not block
    s = settings(tmp_path, output_cap_bytes=4)
    listing = asyncio.run(fs_list({"path": str(tmp_path)}, inv(s)))
    assert [e["name"] for e in listing["entries"]] == ["a.json", "b.txt", "fifo"]
    assert listing["entries"][0]["mimeType"] == "application/json"
    second = asyncio.run(
        fs_list({"path": str(tmp_path), "maxEntries": 2, "pageToken": "2"}, inv(s))
    )
    assert [e["name"] for e in second["entries"]] == ["fifo"] and second["truncated"] is False
    read = asyncio.run(fs_read({"path": str(tmp_path / "b.txt")}, inv(s)))
    assert read["content"] == "\ufffdbin" and read["bytesRead"] == 4 and read["truncated"] is True
    big = asyncio.run(fs_read({"path": str(tmp_path / "b.txt"), "maxBytes": 1000}, inv(s)))
    assert big["bytesRead"] == 4  # the cap wins over maxBytes
    for call, params, code in [
        (fs_read, {"path": str(tmp_path / "fifo")}, "INVALID_PATH"),
        (fs_read, {"path": str(tmp_path / "b.txt"), "offset": -1}, "INVALID_REQUEST"),
        (fs_read, {"path": str(tmp_path / "b.txt"), "encoding": "hex"}, "INVALID_REQUEST"),
        (fs_read, {"path": str(tmp_path / "b.txt"), "maxBytes": 0}, "INVALID_REQUEST"),
        (fs_list, {"path": str(tmp_path), "maxEntries": True}, "INVALID_REQUEST"),
        (fs_list, {"path": str(tmp_path), "pageToken": "x"}, "INVALID_REQUEST"),
        (fs_list, {"path": "/"}, "PATH_POLICY_DENIED"),
    ]:
        with pytest.raises(CommandError) as err:
            asyncio.run(call(params, inv(s)))
        assert err.value.code == code, (params, err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads anything")
def test_fs_read_permission_denied(tmp_path: Path) -> None:
    locked = tmp_path / "locked.txt"
    locked.write_text("x")
    locked.chmod(0)
    with pytest.raises(CommandError) as err:
        asyncio.run(fs_read({"path": str(locked)}, inv(settings(tmp_path))))
    assert err.value.code == "PERMISSION_DENIED"


def run(s: NodeSettings, params: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(system_run(params, inv(s, "system.run")))  # type: ignore[no-any-return]


def test_system_run_results(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert run(s, {"command": ["echo", "a b"]})["stdout"] == "a b\n"
    code = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    killed = run(s, {"command": [sys.executable, "-c", code]})
    assert killed["exitCode"] is None and killed["error"] == "killed by signal SIGTERM"
    # a real-time signal has no name in signal.Signals: reported by number, output kept
    rt = signal.SIGRTMIN + 1
    code = f"import os; print('partial', flush=True); os.kill(os.getpid(), {rt})"
    killed = run(s, {"command": [sys.executable, "-c", code]})
    assert killed["error"] == f"killed by signal {rt}" and killed["stdout"] == "partial\n"
    assert killed["success"] is False and killed["timedOut"] is False
    both = run(
        s,
        {
            "command": [
                sys.executable,
                "-c",
                "import sys; print('o'*100); sys.stderr.write('e'*100)",
            ]
        },
    )
    # the reference's marker goes to stderr when it has text, else to stdout
    assert both["stdout"] == "o" * 64 and both["stderr"] == "e" * 64 + "\n... (truncated)"
    only_out = run(s, {"command": [sys.executable, "-c", "print('o' * 100)"]})
    assert only_out["stdout"] == "o" * 64 + "\n... (truncated)" and only_out["stderr"] == ""
    assert set(only_out) == {"exitCode", "timedOut", "success", "stdout", "stderr", "error"}
    short = Path(tempfile.mkdtemp(prefix="ocw-"))  # its path must fit the 64-byte output cap
    try:
        where = run(
            s,
            {"command": [sys.executable, "-c", "import os; print(os.getcwd())"], "cwd": str(short)},
        )
        assert where["stdout"].strip() == str(short)
    finally:
        short.rmdir()


def test_system_run_timeout_kills_the_group(tmp_path: Path) -> None:
    s = settings(tmp_path, run_timeout_ms=300)
    marker = tmp_path / "grandchild.pid"
    # a grandchild in the same group holding the pipes: the timeout must end it too
    code = (
        "import subprocess, sys, time;"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f"open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    result = run(s, {"command": [sys.executable, "-c", code], "timeoutMs": 60_000})
    assert result["exitCode"] == 124 and result["timedOut"] is True and result["success"] is False
    pid = int(marker.read_text())
    wait_until(lambda: process_gone(pid), 10, "the grandchild to be killed")


def process_gone(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it (dead either way)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_system_run_ends_a_background_child_holding_the_output(tmp_path: Path) -> None:
    # the program exits at once; what it left running keeps the output open until the
    # timeout, which then ends it too
    s = settings(tmp_path, run_timeout_ms=500)
    marker = tmp_path / "bg.pid"
    code = (
        "import subprocess, sys;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f"open({str(marker)!r}, 'w').write(str(p.pid)); print('started')"
    )
    result = run(s, {"command": [sys.executable, "-c", code]})
    assert result["exitCode"] == 124 and result["timedOut"] is True
    assert result["stdout"] == "started\n"
    wait_until(lambda: process_gone(int(marker.read_text())), 10, "the background child to end")


def test_system_run_refusals(tmp_path: Path) -> None:
    s = settings(tmp_path)
    for params, message in [
        ({"command": []}, "command required"),
        ({"command": [""]}, "command required"),
        ({"command": ["echo", 1]}, "command required"),
        ({"command": ["echo", "a\0b"]}, "command contains a NUL byte"),
        ({"command": ["echo"], "env": {"A": "1"}}, "env is not supported by this node"),
        ({"command": ["echo"], "timeoutMs": 0}, "timeoutMs must be a positive integer"),
        (
            {"command": ["echo"], "cwd": str(tmp_path / "nope")},
            "cwd must be an existing absolute directory on this node",
        ),
    ]:
        with pytest.raises(CommandError) as err:
            run(s, params)
        assert (err.value.code, err.value.message) == ("INVALID_REQUEST", message)
    with pytest.raises(CommandError) as err:
        run(s, {"command": ["sh", "-c", "id"]})
    assert err.value.code == "SYSTEM_RUN_DENIED"


def test_system_run_that_cannot_start(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/nonexistent/interpreter\n")
    script.chmod(0o755)
    result = run(settings(tmp_path, run_allowlist=(str(script),)), {"command": [str(script)]})
    assert result["exitCode"] is None and result["success"] is False
    assert result["error"].startswith("cannot start: ")


class FakeLink:
    """Stands in for GatewayClient: records what the host sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send_nowait(self, method: str, params: Any = None) -> None:
        self.sent.append((method, params))


def request_event(command: str, params: Any = None, invoke_id: str = "inv-1") -> IncomingEvent:
    payload = {
        "id": invoke_id,
        "nodeId": "node-1",
        "command": command,
        "paramsJSON": None if params is None else json.dumps(params),
        "timeoutMs": 5000,
    }
    return IncomingEvent("node.invoke.request", msgspec.Raw(json.dumps(payload).encode()))


def make_host(tmp_path: Path) -> NodeHost:
    s = settings(tmp_path)
    link = NodeLink("ws://127.0.0.1:1/", identity=None, device_auth=None)  # type: ignore[arg-type]
    return NodeHost(
        link,
        build_registry(s),
        lambda r: Invocation(r.id, r.command, r.timeout_ms, s),
        display_name="unit",
        path_env=s.path_env,
    )


def test_host_answers_inline_unknown_and_failing_commands(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[str, dict[str, Any]]]:
        host, link = make_host(tmp_path), FakeLink()
        on = host._on_event
        on(link, request_event("system.info"))  # type: ignore[arg-type]
        on(link, request_event("camera.snap", invoke_id="inv-2"))  # type: ignore[arg-type]
        on(link, request_event("system.notify", {"title": ""}, invoke_id="inv-3"))  # type: ignore[arg-type]
        bad = IncomingEvent("node.invoke.request", msgspec.Raw(b'{"id": 1}'))
        on(link, bad)  # type: ignore[arg-type]  # ignored, logged
        on(link, IncomingEvent("tick", msgspec.Raw(b'{"ts": 1}')))  # type: ignore[arg-type]
        host.registry.inline["system.info"] = lambda p, i: 1 / 0  # a bug in a command
        on(link, request_event("system.info", invoke_id="inv-4"))  # type: ignore[arg-type]
        return link.sent

    sent = asyncio.run(scenario())
    assert [m for m, _ in sent] == ["node.invoke.result"] * 4
    first = sent[0][1]
    assert first["id"] == "inv-1" and first["nodeId"] == "node-1" and first["ok"] is True
    assert json.loads(first["payloadJSON"])["displayName"] == "unit"
    assert sent[1][1] == {
        "id": "inv-2",
        "nodeId": "node-1",
        "ok": False,
        "error": {"code": "UNAVAILABLE", "message": "command not supported"},
    }
    assert sent[2][1]["error"] == {"code": "INVALID_REQUEST", "message": "empty notification"}
    assert sent[3][1]["error"] == {"code": "UNAVAILABLE", "message": "node invocation failed"}


def test_a_result_that_is_not_json_is_answered_as_a_failure_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Inline (in the socket callback) and task commands alike: the gateway must not wait
    for its timeout because a command returned something msgspec cannot encode."""

    async def returns_an_object(params: dict[str, Any], invocation: Invocation) -> Any:
        return {"value": object()}

    async def scenario() -> list[tuple[str, dict[str, Any]]]:
        host, link = make_host(tmp_path), FakeLink()
        host.registry.inline["system.info"] = lambda p, i: {1j}
        host.registry.handlers["system.run"] = returns_an_object
        host._on_event(link, request_event("system.info"))  # type: ignore[arg-type]
        assert len(link.sent) == 1  # answered inside the callback
        host._on_event(link, request_event("system.run", {}, invoke_id="inv-2"))  # type: ignore[arg-type]
        async with asyncio.timeout(10):
            while host._inflight:
                await asyncio.sleep(0.01)
        return link.sent

    with caplog.at_level("ERROR", logger="openclaw.node"):
        sent = asyncio.run(scenario())
    failure = {"code": "UNAVAILABLE", "message": "node invocation failed: result is not JSON"}
    assert [(p["id"], p["ok"], p["error"]) for _, p in sent] == [
        ("inv-1", False, failure),
        ("inv-2", False, failure),
    ]
    assert all("payloadJSON" not in p for _, p in sent)
    assert "system.info returned a result that is not JSON" in caplog.text
    assert "system.run returned a result that is not JSON" in caplog.text


def test_host_runs_slow_commands_as_tasks_and_honours_cancel(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[Any], list[Any]]:
        host, link = make_host(tmp_path), FakeLink()
        on = host._on_event
        on(link, request_event("system.run", {"command": ["echo", "x"]}))  # type: ignore[arg-type]
        slow = {"command": [sys.executable, "-c", "import time; time.sleep(30)"]}
        on(link, request_event("system.run", slow, invoke_id="inv-slow"))  # type: ignore[arg-type]
        assert set(host._inflight) == {"inv-1", "inv-slow"}
        async with asyncio.timeout(10):
            while "inv-1" in host._inflight:
                await asyncio.sleep(0.01)
        done = list(link.sent)
        cancel = msgspec.Raw(b'{"invokeId": "inv-slow", "nodeId": "node-1"}')
        on(link, IncomingEvent("node.invoke.cancel", cancel))  # type: ignore[arg-type]
        on(link, IncomingEvent("node.invoke.cancel", msgspec.Raw(b'{"invokeId": "gone"}')))  # type: ignore[arg-type]
        async with asyncio.timeout(10):
            while host._inflight:
                await asyncio.sleep(0.01)
        return done, link.sent

    done, sent = asyncio.run(scenario())
    assert len(done) == 1 and json.loads(done[0][1]["payloadJSON"])["stdout"] == "x\n"
    assert sent == done  # a cancelled invoke is not answered
