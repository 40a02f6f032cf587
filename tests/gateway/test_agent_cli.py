"""``openclaw gateway agent`` as a person runs it: the console script against real gateways."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from agent_helpers import TOKEN, answer_invoke, node, operator, start_profile
from conftest import GatewayProcess, clean_env, wait_until
from fakes.openai_server import http_error, serve
from openclaw_cli import OPENCLAW

from openclaw_multi.client.gateway import GatewayClient

pytestmark = pytest.mark.e2e


def cli_env(home: Path, port: int) -> dict[str, str]:
    return clean_env(
        home,
        OPENCLAW_PROFILE="agent",
        OPENCLAW_GATEWAY_TOKEN=TOKEN,
        OPENCLAW_GATEWAY_PORT=str(port),
    )


def openclaw(home: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(home, port)
    return subprocess.run([*OPENCLAW, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def gw(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    return start_profile(home, gateway_factory)


def test_without_expect_final_it_prints_the_accepted_run(home: Path, gw: GatewayProcess) -> None:
    result = openclaw(home, gw.port, "gateway", "agent", "-m", "hi", "--idempotency-key", "k1")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "accepted run k1 (session agent:main:main)"
    op = operator(gw.port)
    assert op.call("agent.wait", {"runId": "k1"})["payload"]["status"] == "ok"
    op.close()
    as_json = openclaw(home, gw.port, "gateway", "agent", "-m", "hi", "--session", "s", "--json")
    line = json.loads(as_json.stdout)
    assert line["type"] == "accepted" and line["payload"]["sessionKey"] == "agent:main:s"


def test_expect_final_streams_the_reply(home: Path, gw: GatewayProcess) -> None:
    result = openclaw(home, gw.port, "gateway", "agent", "--message", "hello", "--expect-final")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("I am the offline agent")
    assert result.stdout.endswith("You said: hello\n")
    lines = [
        json.loads(x)
        for x in openclaw(
            home, gw.port, "gateway", "agent", "-m", "/nodes", "--expect-final", "--json"
        ).stdout.splitlines()
    ]
    assert lines[0]["type"] == "accepted" and lines[-1]["type"] == "final"
    assert lines[-1]["payload"]["result"]["payloads"] == [{"text": "No nodes are connected."}]
    streams = [x["payload"]["stream"] for x in lines[1:-1]]
    assert streams[0] == "lifecycle" and "assistant" in streams and streams[-1] == "lifecycle"
    assert all(
        x["type"] == "agent" and x["payload"]["runId"] == lines[0]["payload"]["runId"]
        for x in lines[1:-1]
    )


def test_tool_calls_go_to_stderr(home: Path, gw: GatewayProcess) -> None:
    key, nd = node(gw.port, ["test.echo"])
    proc = subprocess.Popen(
        [*OPENCLAW, "gateway", "agent", "-m", f"/node {key.device_id} test.echo", "--expect-final"],
        env=cli_env(home, gw.port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answer_invoke(nd, key.device_id, {"pong": True})
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == 'test.echo on Build box: {"pong": true}\n'
    assert "[tool] test.echo {" in err and "[tool] test.echo ok" in err
    nd.close()


def test_a_failed_run_is_one_error_line_and_exit_1(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    with serve([http_error(500, "down")]) as fake:
        agent = {"backend": "openai", "openai": {"baseUrl": fake.base_url, "apiKey": "sk-x"}}
        gw = start_profile(home, gateway_factory, {"agent": agent})
        result = openclaw(home, gw.port, "gateway", "agent", "-m", "hi", "--expect-final")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("accepted run ")
    assert lines[1:] == ["error: UNAVAILABLE: model endpoint failed (HTTP 500): down"]
    assert "Traceback" not in result.stderr


def test_a_run_past_timeout_says_so_in_one_line(home: Path, gw: GatewayProcess) -> None:
    """The gateway answered (accepted); only the run is not over: not "did not answer"."""
    key, nd = node(gw.port, ["test.echo"])  # never answers the invoke: the run stays open
    ask = ["gateway", "agent", "-m", f"/node {key.device_id} test.echo", "--expect-final"]
    result = openclaw(home, gw.port, *ask, "--timeout", "1", "--idempotency-key", "slow")
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: agent run slow did not end within 1s; it goes on")
    assert "did not answer" not in result.stderr and "Traceback" not in result.stderr
    as_json = openclaw(home, gw.port, *ask, "--timeout", "1", "--json")
    lines = [json.loads(x) for x in as_json.stdout.splitlines()]
    assert as_json.returncode == 1 and lines[0]["type"] == "accepted"
    assert lines[-1] == {
        "type": "error",
        "error": {"code": "TIMEOUT", "message": "no outcome within 1s"},
    }
    nd.close()


def test_a_reply_cannot_drive_the_terminal(home: Path, gw: GatewayProcess) -> None:
    """Escape sequences in a streamed reply (OSC 52 sets the clipboard) print as U+FFFD."""
    ask = ["gateway", "agent", "-m", "hi\x1b]52;c;eA==\x07", "--expect-final"]
    echoed = openclaw(home, gw.port, *ask)  # the offline agent echoes the message
    assert echoed.returncode == 0, echoed.stderr
    assert "\x1b" not in echoed.stdout and "hi\ufffd]52;c;eA==\ufffd" in echoed.stdout


def test_ctrl_c_stops_the_run_and_exits_130(home: Path, gw: GatewayProcess) -> None:
    """As the reference: Ctrl+C sends chat.abort for the run, so it no longer holds the session."""
    key, nd = node(gw.port, ["test.echo"])  # never answers the invoke: the run stays open
    err_path = home / "agent.err"
    ask = ["gateway", "agent", "-m", f"/node {key.device_id} test.echo", "--expect-final"]
    with err_path.open("w") as err_file:
        proc = subprocess.Popen(
            [*OPENCLAW, *ask, "--idempotency-key", "ctrl-c"],
            env=cli_env(home, gw.port),
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            text=True,
        )
    try:
        wait_until(lambda: "[tool] test.echo" in err_path.read_text(), 20.0, "the tool call")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = err_path.read_text().splitlines()
    assert lines[-1] == "error: interrupted: agent run ctrl-c aborted"
    assert "Traceback" not in err_path.read_text()
    op = operator(gw.port)
    waited = op.call("agent.wait", {"runId": "ctrl-c", "timeoutMs": 10_000})["payload"]
    # Ended (not still running): aborted by the RPC, as agent.wait reports an abort.
    assert waited["error"] == "aborted" and waited["stopReason"] == "rpc", waited
    op.close()
    nd.close()


def test_missing_message_is_a_usage_error(home: Path) -> None:
    result = openclaw(home, 9, "gateway", "agent")
    assert result.returncode == 2 and "--message" in result.stderr


def test_gateway_client_call_final_waits_past_accepted(gw: GatewayProcess) -> None:
    async def main() -> None:
        client = await GatewayClient.connect(f"ws://127.0.0.1:{gw.port}/", token=TOKEN)
        async with client:
            seen: list[dict[str, object]] = []
            final = await client.call_final(
                "agent", {"message": "/nodes", "idempotencyKey": "cf"}, on_accepted=seen.append
            )
            assert [s["status"] for s in seen] == ["accepted"] and seen[0]["runId"] == "cf"
            assert final["status"] == "ok" and final["runId"] == "cf"
            # a plain call takes the first answer; the second is dropped, the link goes on
            accepted = await client.call("agent", {"message": "hi", "idempotencyKey": "plain"})
            assert accepted["status"] == "accepted"
            wait = await client.call("agent.wait", {"runId": "plain"})
            assert wait["status"] == "ok"
            assert (await client.call("health"))["ok"] is True
            # a method that answers once is just a call
            assert (await client.call_final("health"))["ok"] is True

    asyncio.run(main())
