"""``openclaw node start|stop|status``: a node host run and restarted by the supervisor.

A gateway runs in its own home (so the supervisor never adopts it); the supervisor and the
node host's profile share a short home. Only processes we started are signalled, by pid.
Cleanup: Shutdown(stop_gateways) to the supervisor, then anything tracked still alive.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, start_gateway, wait_until
from supervised import SupervisedHome, alive, supervised_home
from test_nodehost_live import TOKEN, connected_node, invoke, ok_payload, operator

from openclaw_multi.client.control import supervisor_dir
from openclaw_multi.protocol.control import Shutdown

pytestmark = pytest.mark.e2e
POLICY = {
    "OPENCLAW_SUPERVISOR_BACKOFF_INITIAL": "0.1",
    "OPENCLAW_SUPERVISOR_BACKOFF_MAX": "0.4",
    "OPENCLAW_SUPERVISOR_READY_TIMEOUT": "20",
    "OPENCLAW_SUPERVISOR_STOP_TIMEOUT": "5",
    "OPENCLAW_SUPERVISOR_PROBE_INTERVAL": "0.3",
}


class Harness(SupervisedHome):
    def nodes(self) -> dict[str, dict[str, Any]]:
        return self.rows("node", "status", "--json")


@pytest.fixture
def sv() -> Iterator[Harness]:
    with supervised_home(Harness, "ocn-", POLICY) as harness:
        yield harness


def test_supervised_node_host(sv: Harness, tmp_path: Path) -> None:
    gw_home = tmp_path / "gwhome"
    gw_home.mkdir()
    state = gw_home / ".openclaw-gw"
    state.mkdir()
    (state / "openclaw.json").write_text(json.dumps({"gateway": {"auth": {"mode": "token"}}}))
    gw = start_gateway(
        gw_home, "gw", env_extra={"OPENCLAW_PROFILE": "gw", "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    )
    try:
        node_state = sv.home / ".openclaw-laptop"
        node_state.mkdir()
        (node_state / "openclaw.json").write_text(json.dumps({"nodeHost": {"displayName": "sup"}}))
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN)

        refused = sv.run("node", "start", "laptop")
        assert refused.returncode == 1 and "no node host laptop yet" in refused.stderr
        bad = sv.run("node", "start", "laptop", "--url", "http://x/")
        assert bad.returncode == 2 and "invalid --url" in bad.stderr

        started = sv.run(
            "node", "start", "laptop", "--url", gw.url, "--token-file", str(token_file)
        )
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("laptop: running (pid ")
        row = sv.nodes()["laptop"]
        assert row["state"] == "RUNNING" and row["desired"] is True and row["url"] == gw.url
        first_pid = row["pid"]

        # the token is stored in the profile, 0600, and appears in no argv or definition
        stored = node_state / "nodehost-token"
        assert stored.read_text().strip() == TOKEN and (stored.stat().st_mode & 0o777) == 0o600
        argv = Path(f"/proc/{first_pid}/cmdline").read_bytes().decode()
        assert TOKEN not in argv and "--profile\0laptop\0node\0run" in argv
        assert TOKEN not in (supervisor_dir(sv.home) / "nodes.json").read_text()

        op = operator(gw.port)
        entry = connected_node(op, _Proc(first_pid), timeout=30)
        assert ok_payload(invoke(op, entry["nodeId"], "system.info"))["pid"] == first_pid
        wait_until(lambda: sv.nodes()["laptop"]["connected"] is True, 20, "connected")
        assert sv.run("node", "status").returncode == 0

        os.kill(first_pid, signal.SIGKILL)  # the supervisor brings it back

        def restarted() -> dict[str, Any] | None:
            now = sv.nodes()["laptop"]
            ok = now["pid"] not in (None, first_pid) and now["connected"] is True
            return now if ok else None

        again = wait_until(restarted, 40, "a restarted, reconnected node host")
        assert again["restarts"] >= 1  # type: ignore[index]
        assert ok_payload(invoke(op, entry["nodeId"], "system.info"))["pid"] == again["pid"]  # type: ignore[index]
        op.close()

        stopped = sv.run("node", "stop", "laptop")
        assert stopped.returncode == 0 and stopped.stdout.startswith("laptop: stopped")
        row = sv.nodes()["laptop"]
        assert row["state"] == "STOPPED" and row["pid"] is None and row["desired"] is False
        assert not alive(again["pid"], None)  # type: ignore[index]
        down = sv.run("node", "status")
        assert down.returncode == 0 and "STOPPED" in down.stdout

        removed = sv.run("node", "stop", "laptop", "--remove")
        assert removed.returncode == 0 and sv.nodes() == {}
        unknown = sv.run("node", "stop", "laptop")
        assert unknown.returncode == 1 and "no node host laptop" in unknown.stderr
    finally:
        gw.stop()


def test_supervised_config_error_is_final(sv: Harness) -> None:
    node_state = sv.home / ".openclaw-broken"
    node_state.mkdir()
    (node_state / "openclaw.json").write_text(json.dumps({"nodeHost": {"fsRoots": "nope"}}))
    res = sv.run("node", "start", "broken", "--url", "ws://127.0.0.1:9/", "--token", "x")
    assert res.returncode == 1, res
    assert "node broken:" in res.stderr and "fsRoots" in res.stderr
    row = sv.nodes()["broken"]
    assert row["state"] == "FATAL" and row["lastExit"] == 78


class _Proc:
    """What connected_node needs of a node: a process that is still running."""

    def __init__(self, pid: int) -> None:
        self.proc = self
        self.pid = pid

    def poll(self) -> int | None:
        return None if alive(self.pid, None) else 1

    def output(self) -> str:
        return ""


def test_a_restarted_supervisor_adopts_the_running_node_host(sv: Harness) -> None:
    # no gateway: the host is up (and retrying) all the same, which is what READY means
    (sv.home / ".openclaw-laptop").mkdir()
    url = f"ws://127.0.0.1:{free_port()}/"
    started = sv.run("node", "start", "laptop", "--url", url, "--token", "x")
    assert started.returncode == 0, started.stderr
    row = sv.nodes()["laptop"]
    assert row["state"] == "RUNNING" and row["connected"] is False
    assert "connection refused" in (row["lastError"] or "")
    pid = row["pid"]
    old_supervisor = json.loads((supervisor_dir(sv.home) / "supervisor.json").read_text())["pid"]
    sv.track(old_supervisor)

    sv.client.request(Shutdown(stop_gateways=False), timeout=20, autostart=False)
    wait_until(lambda: not alive(old_supervisor, None), 20, "the supervisor to exit")
    assert alive(pid, None)  # left running, to be adopted
    assert sv.run("node", "status").returncode == 1  # no supervisor to ask

    again = sv.run("node", "start", "laptop")  # starts a supervisor, which adopts it
    assert again.returncode == 0, again.stderr
    assert sv.nodes()["laptop"]["pid"] == pid
    assert sv.run("node", "stop", "laptop").returncode == 0
    wait_until(lambda: not alive(pid, None), 20, "the adopted host to stop")
