"""The node host as a real process against a real gateway (docs/nodes.md).

Each test starts a gateway (token auth; loopback devices are approved on the spot) and
``openclaw --profile laptop node run --url ... --token-file ...`` as a subprocess, then drives
``node.invoke`` as an operator and checks what comes back: results, refusals, timeouts,
reconnects and a node killed mid-call.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GatewayProcess, clean_env, wait_until
from node_process import CLI, NodeProcess, node_entry, start_node_host
from test_nodehost_commands import process_gone
from wire import Wire

pytestmark = pytest.mark.e2e
TOKEN = "t0ken-" + uuid.uuid4().hex


class Node(NodeProcess):
    """A node host process we started."""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=15)


def start_gateway_for_nodes(
    home: Path, factory: Callable[..., GatewayProcess], tick_ms: int | None = None, **kw: Any
) -> GatewayProcess:
    state = home / ".openclaw-gw"
    state.mkdir(exist_ok=True)
    gateway: dict[str, Any] = {"auth": {"mode": "token"}}
    if tick_ms is not None:
        gateway["limits"] = {"tickIntervalMs": tick_ms}
    (state / "openclaw.json").write_text(json.dumps({"gateway": gateway}))
    env = {"OPENCLAW_PROFILE": "gw", "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    return factory("gw", env_extra=env, **kw)


@pytest.fixture
def gw(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    return start_gateway_for_nodes(home, gateway_factory)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "shared"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello node\n")
    (root / "sub" / "deep.txt").write_text("deep")
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.txt").write_text("not yours")
    (root / "escape").symlink_to(secret / "secret.txt")
    (root / "escape-dir").symlink_to(secret)
    return {"root": root, "outside": secret}


@pytest.fixture
def node_factory(home: Path, files: dict[str, Path]) -> Iterator[Callable[..., Node]]:
    started: list[Node] = []

    def factory(
        url: str, *, node_host: dict[str, Any] | None = None, profile: str = "laptop"
    ) -> Node:
        section = node_host or {
            "displayName": "Test laptop",
            "fsRoots": [str(files["root"])],
            "runAllowlist": ["echo", "sleep", sys.executable],
            "runTimeoutMs": 20_000,
            "outputCapBytes": 1000,
        }
        token_file = home / "gw-token"
        token_file.write_text(TOKEN + "\n")
        node = start_node_host(
            Node,
            home,
            profile,
            section,
            url,
            "--token-file",
            str(token_file),
            out=home / f"node-{profile}-{len(started)}.out",
            env=clean_env(home, DEPLOY_API_TOKEN="not-for-children"),
        )
        started.append(node)
        return node

    yield factory
    for node in started:
        if node.proc.poll() is None:
            node.proc.kill()
        node.proc.wait(timeout=10)


def operator(port: int) -> Wire:
    wire = Wire(port)
    res = wire.hello(auth={"token": TOKEN})
    assert res["ok"] is True, res
    return wire


def connected_node(op: Wire, node: Node, timeout: float = 20.0) -> dict[str, Any]:
    """Wait for the node host to connect; approve its command surface if it asks."""
    return node_entry(op, node, approve=True, timeout=timeout)


def invoke(
    op: Wire, node_id: str, command: str, params: Any = None, **extra: Any
) -> dict[str, Any]:
    call: dict[str, Any] = {
        "nodeId": node_id,
        "command": command,
        "idempotencyKey": str(uuid.uuid4()),
    }
    if params is not None:
        call["params"] = params
    call.update(extra)
    return op.response(op.request("node.invoke", call), timeout=30)


def ok_payload(res: dict[str, Any]) -> Any:
    assert res["ok"] is True, res
    return res["payload"]["payload"]


def node_error(res: dict[str, Any]) -> dict[str, Any]:
    assert res["ok"] is False, res
    assert res["error"]["code"] == "UNAVAILABLE", res
    return res["error"]["details"]["nodeError"]  # type: ignore[no-any-return]


def test_declares_and_serves_system_commands(
    gw: GatewayProcess, node_factory: Callable[..., Node]
) -> None:
    node = node_factory(gw.url)
    op = operator(gw.port)
    entry = connected_node(op, node)
    assert entry["displayName"] == "Test laptop" and entry["clientMode"] == "node"
    assert entry["caps"] == ["file", "system"]
    assert entry["commands"] == [
        "fs.list",
        "fs.read",
        "system.info",
        "system.notify",
        "system.run",
        "system.which",
    ]
    node_id = entry["nodeId"]

    info = ok_payload(invoke(op, node_id, "system.info"))
    assert info["displayName"] == "Test laptop" and info["platform"] == sys.platform
    assert info["pid"] == node.proc.pid and info["commands"] == entry["commands"]
    assert info["outputCapBytes"] == 1000 and info["uptimeMs"] >= 0

    assert ok_payload(invoke(op, node_id, "system.notify", {"title": "Build", "body": "done"})) == {
        "ok": True
    }
    wait_until(
        lambda: "notification (active): Build - done" in node.log(),
        10,
        "the notification in node.log",
    )
    assert node_error(invoke(op, node_id, "system.notify", {"title": " "})) == {
        "code": "INVALID_REQUEST",
        "message": "empty notification",
    }

    which = ok_payload(invoke(op, node_id, "system.which", {"bins": ["sleep", "no-such-bin-x"]}))
    assert set(which["bins"]) == {"sleep"} and which["bins"]["sleep"].endswith("/sleep")

    # not declared: the gateway refuses before dispatch
    res = invoke(op, node_id, "camera.snap")
    assert res["ok"] is False and res["error"]["code"] == "INVALID_REQUEST"
    assert "node command not allowed" in res["error"]["message"]
    # the token never reaches the node's log or output
    assert TOKEN not in node.log() and TOKEN not in node.output()
    op.close()
    assert node.stop() == 0
    assert "stopped" in node.log()


def test_fs_commands_stay_inside_roots(
    gw: GatewayProcess, node_factory: Callable[..., Node], files: dict[str, Path]
) -> None:
    node = node_factory(gw.url)
    op = operator(gw.port)
    node_id = connected_node(op, node)["nodeId"]
    root = files["root"]

    listing = ok_payload(invoke(op, node_id, "fs.list", {"path": str(root)}))
    assert listing["path"] == str(root.resolve()) and listing["total"] == 4
    names = {e["name"]: e for e in listing["entries"]}
    assert sorted(names) == ["escape", "escape-dir", "hello.txt", "sub"]
    assert names["sub"]["isDir"] is True and names["hello.txt"]["size"] == 11
    assert names["escape"]["isSymlink"] is True
    page = ok_payload(invoke(op, node_id, "fs.list", {"path": str(root), "maxEntries": 3}))
    assert [e["name"] for e in page["entries"]] == ["escape", "escape-dir", "hello.txt"]
    assert page["truncated"] is True and page["nextPageToken"] == "3"

    read = ok_payload(invoke(op, node_id, "fs.read", {"path": str(root / "hello.txt")}))
    assert read["content"] == "hello node\n" and read["size"] == 11 and read["truncated"] is False
    part = ok_payload(
        invoke(
            op,
            node_id,
            "fs.read",
            {"path": str(root / "hello.txt"), "offset": 6, "maxBytes": 4, "encoding": "base64"},
        )
    )
    assert part["content"] == "bm9kZQ==" and part["truncated"] is True

    refusals = [
        ("fs.read", {"path": str(files["outside"] / "secret.txt")}, "PATH_POLICY_DENIED"),
        ("fs.read", {"path": str(root / "escape")}, "PATH_POLICY_DENIED"),
        ("fs.list", {"path": str(root / "escape-dir")}, "PATH_POLICY_DENIED"),
        (
            "fs.read",
            {"path": str(root / "sub" / ".." / ".." / "outside" / "secret.txt")},
            "PATH_POLICY_DENIED",
        ),
        ("fs.read", {"path": "hello.txt"}, "INVALID_PATH"),
        ("fs.read", {"path": str(root / "missing")}, "NOT_FOUND"),
        ("fs.read", {"path": str(root / "sub")}, "IS_DIRECTORY"),
        ("fs.list", {"path": str(root / "hello.txt")}, "IS_FILE"),
    ]
    for command, params, code in refusals:
        error = node_error(invoke(op, node_id, command, params))
        assert error["code"] == code, (command, params, error)
        assert "not yours" not in json.dumps(error)
    op.close()


def test_system_run_allowlist_timeout_and_cap(
    gw: GatewayProcess, node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    node = node_factory(gw.url)
    op = operator(gw.port)
    node_id = connected_node(op, node)["nodeId"]

    ran = ok_payload(invoke(op, node_id, "system.run", {"command": ["echo", "hi", "$HOME;", "x"]}))
    assert ran == {
        "exitCode": 0,
        "timedOut": False,
        "success": True,
        "stdout": "hi $HOME; x\n",
        "stderr": "",
        "error": None,
    }
    # the node host's own environment holds a secret: the child must not see it
    code = (
        "import os,sys; sys.stderr.write('e');"
        " print(sorted(k for k in os.environ if 'TOKEN' in k)); sys.exit(3)"
    )
    failed = ok_payload(
        invoke(
            op,
            node_id,
            "system.run",
            {"command": [sys.executable, "-c", code], "cwd": str(tmp_path)},
        )
    )
    assert failed["exitCode"] == 3 and failed["success"] is False
    assert failed["stdout"] == "[]\n" and failed["stderr"] == "e"

    big = ok_payload(
        invoke(
            op, node_id, "system.run", {"command": [sys.executable, "-c", "print('x' * 100000)"]}
        )
    )
    assert big["exitCode"] == 0 and big["stdout"] == "x" * 1000 + "\n... (truncated)"

    started = time.monotonic()
    slow = ok_payload(
        invoke(op, node_id, "system.run", {"command": ["sleep", "30"], "timeoutMs": 300})
    )
    assert slow["exitCode"] == 124 and slow["timedOut"] is True and slow["success"] is False
    assert time.monotonic() - started < 15

    for params, code_, text in [
        (
            {"command": ["rm", "-rf", "/nope"]},
            "SYSTEM_RUN_DENIED",
            "rm is not on this node's run allowlist",
        ),
        (
            {"command": ["/bin/sh", "-c", "echo hi"]},
            "SYSTEM_RUN_DENIED",
            "sh is not on this node's run allowlist",
        ),
        ({"command": "echo hi"}, "INVALID_REQUEST", "command required"),
        ({"command": ["./echo"]}, "INVALID_REQUEST", "relative program path not allowed: ./echo"),
        (
            {"command": ["echo"], "cwd": "relative"},
            "INVALID_REQUEST",
            "cwd must be an existing absolute directory on this node",
        ),
    ]:
        assert node_error(invoke(op, node_id, "system.run", params)) == {
            "code": code_,
            "message": text,
        }
    op.close()


def test_gateway_timeout_cancels_the_run_and_unknown_gets_refused(
    gw: GatewayProcess, node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    node = node_factory(gw.url)
    op = operator(gw.port)
    node_id = connected_node(op, node)["nodeId"]
    marker = tmp_path / "child.pid"
    script = f"import os,time; open({str(marker)!r},'w').write(str(os.getpid())); time.sleep(60)"
    res = invoke(
        op, node_id, "system.run", {"command": [sys.executable, "-c", script]}, timeoutMs=1500
    )
    assert node_error(res)["code"] == "TIMEOUT"
    pid = int(wait_until(lambda: marker.exists() and marker.read_text(), 10, "the child's pid"))  # type: ignore[arg-type]

    wait_until(lambda: process_gone(pid), 10, "the cancelled run's process to be killed")
    wait_until(lambda: "cancelled by the gateway" in node.log(), 10, "the cancel in node.log")
    op.close()


def test_reconnects_after_gateway_restart(
    home: Path, gateway_factory: Callable[..., GatewayProcess], node_factory: Callable[..., Node]
) -> None:
    gw = start_gateway_for_nodes(home, gateway_factory)
    node = node_factory(gw.url)
    op = operator(gw.port)
    first = connected_node(op, node)
    op.close()
    assert gw.stop() == 0
    wait_until(lambda: "disconnected from gateway" in node.log(), 15, "the node to notice")
    gw2 = start_gateway_for_nodes(home, gateway_factory, port=gw.port)
    op = operator(gw2.port)
    again = connected_node(op, node, timeout=40)
    assert again["nodeId"] == first["nodeId"]
    assert ok_payload(invoke(op, again["nodeId"], "system.info"))["pid"] == node.proc.pid
    op.close()


def test_node_killed_mid_call(gw: GatewayProcess, node_factory: Callable[..., Node]) -> None:
    node = node_factory(gw.url)
    op = operator(gw.port)
    node_id = connected_node(op, node)["nodeId"]
    req = op.request(
        "node.invoke",
        {
            "nodeId": node_id,
            "command": "system.run",
            "params": {"command": ["sleep", "30"]},
            "idempotencyKey": str(uuid.uuid4()),
            "timeoutMs": 60_000,
        },
    )
    wait_until(
        lambda: (
            "sleep"
            in subprocess.run(
                ["pgrep", "-P", str(node.proc.pid), "-a"], capture_output=True, text=True
            ).stdout
        ),
        10,
        "the run to start",
    )
    node.proc.kill()
    node.proc.wait(timeout=10)
    res = op.response(req, timeout=15)
    error = node_error(res)
    assert error["code"] == "DISCONNECTED"
    # the gateway keeps serving
    assert op.call("health")["ok"] is True
    assert gw.proc.poll() is None
    op.close()


def test_silent_gateway_is_dropped_and_rejoined(
    home: Path, gateway_factory: Callable[..., GatewayProcess], node_factory: Callable[..., Node]
) -> None:
    gw = start_gateway_for_nodes(home, gateway_factory, tick_ms=500)
    node = node_factory(gw.url)
    op = operator(gw.port)
    node_id = connected_node(op, node)["nodeId"]
    op.close()
    os.kill(gw.pid, signal.SIGSTOP)  # the gateway goes silent without closing anything
    try:
        wait_until(lambda: "no tick from the gateway" in node.log(), 15, "the watchdog")
    finally:
        os.kill(gw.pid, signal.SIGCONT)
    op = operator(gw.port)
    wait_until(lambda: node.log().count("connected to gateway at") >= 2, 40, "a reconnect")
    assert connected_node(op, node)["nodeId"] == node_id
    op.close()


def test_without_url_joins_the_profiles_own_gateway(gw: GatewayProcess, home: Path) -> None:
    env = clean_env(
        home,
        OPENCLAW_PROFILE="gw",
        OPENCLAW_GATEWAY_TOKEN=TOKEN,
        OPENCLAW_GATEWAY_PORT=str(gw.port),
    )
    out = home / "own.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen([*CLI, "node", "run"], env=env, stdout=sink, stderr=sink)
    node = Node(proc, out, gw.state_dir)
    try:
        op = operator(gw.port)
        entry = connected_node(op, node)
        assert entry["commands"] == ["system.info", "system.notify", "system.which"]
        assert ok_payload(invoke(op, entry["nodeId"], "system.info"))["pid"] == proc.pid
        op.close()
        assert node.stop() == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
