"""The command flow's pieces as separate processes, for tests/e2e and tests/faults.

A :class:`Stack` is one throw-away home holding a gateway profile (token auth, the token in
its config so ``openclaw nodes approve`` can reach it) and a node-host profile. The gateway
(``python -m openclaw_multi.gateway``) and the node host (``openclaw --profile flownode node
run --url ...``, its token in ``OPENCLAW_NODE_TOKEN``, never in argv) are subprocesses; the
Telegram Bot API double and the chat-completions fake run in the test process on 127.0.0.1,
port 0. Everything a stack started is ended by its Popen object (or, for a program the node
host ran, by its recorded pid) when the stack closes.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import GatewayProcess, clean_env, free_port, start_gateway
from fakes.openai_server import FakeOpenAI, serve
from fakes.telegram_bot_api import BotApiDouble, bot_api
from node_process import CLI, NodeProcess, start_node_host
from node_process import node_entry as node_entry  # the flow tests import it from here
from wire import Wire

TOKEN = "e2e-gw-token-" + uuid.uuid4().hex
BOT_TOKEN = "777001:E2E-bot-token-" + uuid.uuid4().hex[:16]
OPENAI_KEY = "sk-e2e-" + uuid.uuid4().hex
CHAT = 4242
SESSION = f"telegram:{CHAT}"
STORED_SESSION = f"agent:main:{SESSION}"
GW_PROFILE = "flow"
NODE_PROFILE = "flownode"
NODE_NAME = "e2e-node"


class NodeHost(NodeProcess):
    """A node host process we started."""

    def node_id(self) -> str:
        """Its device id (the node id operators see), from its own key file."""
        raw = json.loads((self.state_dir / "identity" / "node-device.json").read_text())
        return str(raw["deviceId"])

    def children(self) -> list[psutil.Process]:
        """The programs it runs right now (``system.run``)."""
        try:
            found: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
            return found
        except psutil.NoSuchProcess:
            return []


@dataclass
class Stack:
    """One home: a gateway profile, a node-host profile, and what was started in it."""

    home: Path
    port: int = field(default_factory=free_port)
    gateways: list[GatewayProcess] = field(default_factory=list)
    nodes: list[NodeHost] = field(default_factory=list)
    strays: list[psutil.Process] = field(default_factory=list)
    wires: list[Wire] = field(default_factory=list)

    # -- configuration and processes -------------------------------------------------------
    def configure(
        self,
        *,
        telegram_url: str | None = None,
        agent: dict[str, Any] | None = None,
        tick_ms: int | None = None,
    ) -> None:
        """Write the gateway profile's openclaw.json (the bot token comes from the env)."""
        gateway: dict[str, Any] = {
            "port": self.port,
            "auth": {"mode": "token", "token": TOKEN},
        }
        if tick_ms is not None:
            gateway["limits"] = {"tickIntervalMs": tick_ms}
        config: dict[str, Any] = {"gateway": gateway, "agent": agent or {"backend": "offline"}}
        if telegram_url is not None:
            config["channels"] = {
                "telegram": {
                    "enabled": True,
                    "apiBaseUrl": telegram_url,
                    "allowFrom": [CHAT],
                    "pollTimeoutS": 1,
                }
            }
        state = self.home / f".openclaw-{GW_PROFILE}"
        state.mkdir(exist_ok=True)
        (state / "openclaw.json").write_text(json.dumps(config))

    def start_gateway(self) -> GatewayProcess:
        """Start the gateway on the stack's port and wait for READY=1."""
        env = {"TELEGRAM_BOT_TOKEN": BOT_TOKEN, "E2E_OPENAI_KEY": OPENAI_KEY}
        gw = start_gateway(self.home, GW_PROFILE, port=self.port, env_extra=env)
        self.gateways.append(gw)
        return gw

    def start_node(self, *, run_timeout_ms: int = 20_000) -> NodeHost:
        """``openclaw --profile flownode node run --url ...`` with the token in the env."""
        section = {
            "displayName": NODE_NAME,
            "runAllowlist": ["sleep"],
            "runTimeoutMs": run_timeout_ms,
        }
        node = start_node_host(
            NodeHost,
            self.home,
            NODE_PROFILE,
            section,
            self.url,
            out=self.home / f"node-{len(self.nodes)}.out",
            env=clean_env(self.home, OPENCLAW_NODE_TOKEN=TOKEN),
        )
        self.nodes.append(node)
        return node

    def openclaw(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The CLI against the gateway profile (it finds the port and token in the config)."""
        return subprocess.run(
            [*CLI, "--profile", GW_PROFILE, *args],
            env=clean_env(self.home),
            capture_output=True,
            text=True,
            timeout=30,
        )

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def close(self) -> None:
        for wire in self.wires:
            wire.close()
        for node in self.nodes:
            self.strays.extend(node.children())
            if node.proc.poll() is None:
                node.proc.kill()
            node.proc.wait(timeout=10)
        for stray in self.strays:  # a program an already-killed node host left running
            with contextlib.suppress(psutil.NoSuchProcess):  # psutil checks pid reuse
                stray.send_signal(signal.SIGKILL)
        for gw in self.gateways:
            if gw.proc.poll() is None:
                gw.proc.kill()
            gw.proc.wait(timeout=10)

    # -- an operator (the webchat side and the approvals) ----------------------------------
    def operator(self) -> Wire:
        wire = Wire(self.port)
        res = wire.hello(auth={"token": TOKEN})
        assert res["ok"] is True, res
        self.wires.append(wire)
        return wire


def history(op: Wire, session_key: str = SESSION) -> list[dict[str, Any]]:
    res = op.call("chat.history", {"sessionKey": session_key})
    assert res["ok"] is True, res
    return res["payload"]["messages"]  # type: ignore[no-any-return]


def conversation(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages people exchanged: the agent's tool calls and their results left out."""
    return [
        m
        for m in messages
        if m["role"] != "toolResult" and not any(b["type"] == "toolCall" for b in m["content"])
    ]


def text_of(message: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in message["content"])


def node_answer(reply: str, command: str = "system.info") -> dict[str, Any]:
    """The JSON result in the offline agent's ``<command> on <node>: {...}`` reply."""
    prefix = f"{command} on {NODE_NAME}: "
    assert reply.startswith(prefix), reply
    value = json.loads(reply[len(prefix) :])
    assert isinstance(value, dict)
    return value


def chat_run(op: Wire, session_key: str, message: str, timeout: float = 20.0) -> ChatRun:
    """``chat.send`` and the run's ``chat`` events up to its last one (final/error/aborted)."""
    key = str(uuid.uuid4())
    res = op.call(
        "chat.send", {"sessionKey": session_key, "message": message, "idempotencyKey": key}
    )
    assert res["ok"] is True, res
    run_id = res["payload"]["runId"]
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no end of run {run_id} within {timeout}s (saw {events})"
        frame = op.recv(left)
        if frame.get("type") != "event" or frame.get("event") != "chat":
            continue
        payload = frame["payload"]
        if payload.get("runId") != run_id:
            continue
        events.append(payload)
        if payload["state"] in ("final", "error", "aborted"):
            return ChatRun(run_id, events)


@dataclass
class ChatRun:
    """The ``chat`` events of one run, in order."""

    run_id: str
    events: list[dict[str, Any]]

    @property
    def last(self) -> dict[str, Any]:
        return self.events[-1]

    def states(self) -> list[str]:
        return [e["state"] for e in self.events]


# -- fixtures shared by the flow tests (imported by name into their modules) -----------------
@pytest.fixture
def stack(home: Path) -> Iterator[Stack]:
    """A gateway (+ node hosts on demand) for one test, all ended by pid afterwards."""
    s = Stack(home)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def api() -> Iterator[BotApiDouble]:
    """The Telegram Bot API double the stack's gateway polls."""
    with bot_api(BOT_TOKEN) as double:
        yield double


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    """A scripted chat-completions server (no replies queued yet)."""
    with serve([]) as fake:
        yield fake
