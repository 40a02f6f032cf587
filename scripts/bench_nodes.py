"""Node benchmark: sequential ``node.invoke`` round trips, operator -> gateway -> node -> back.

Run on demand (not in CI):
    .venv/bin/python scripts/bench_nodes.py [--count 1000] [--json] [--out results/nodes.json]

A gateway and our node host (``openclaw node run``) run as separate processes in a temporary
home, on loopback; one operator client (our GatewayClient on uvloop) approves the node's
command surface, warms up, then does ``--count`` rounds of: one ``last-heartbeat`` (the
baseline: operator -> gateway -> back) and one ``node.invoke`` of ``system.info`` (the node's
cheapest real command), each timed alone, strictly one at a time. Reported: p50/p99/max of
both and the invoke/heartbeat ratio at p50 and p99, plus the CPU the gateway and the node
host spent per invoke. The goal is p99 <= 5 ms. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from bench_profiles import machine  # one description of the machine for every bench

from openclaw_multi import runtime
from openclaw_multi.client.gateway import GatewayClient

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-" + uuid.uuid4().hex
GOAL_P99_MS = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _python(profile_to: Path | None, name: str) -> list[str]:
    """The interpreter command, under cProfile when asked (``--cprofile DIR``)."""
    if profile_to is None:
        return [sys.executable]
    return [sys.executable, "-m", "cProfile", "-o", str(profile_to / f"{name}.prof")]


def start_gateway(
    home: Path, profile_to: Path | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """A gateway (token auth) started as a supervisor does it, ready on sd_notify."""
    state = home / ".openclaw-benchgw"
    state.mkdir()
    (state / "openclaw.json").write_text(json.dumps({"gateway": {"auth": {"mode": "token"}}}))
    port = free_port()
    notify_dir = Path(tempfile.mkdtemp(prefix="ocbn-"))
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_dir / "n.sock"))
    notify.settimeout(20)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env.update(
        HOME=str(home),
        NOTIFY_SOCKET=str(notify_dir / "n.sock"),
        OPENCLAW_PROFILE="benchgw",
        OPENCLAW_GATEWAY_TOKEN=TOKEN,
    )
    cmd = [*_python(profile_to, "gateway"), "-m", "openclaw_multi.gateway", "--profile", "benchgw"]
    proc = subprocess.Popen([*cmd, "--port", str(port), "--quiet"], env=env)
    try:
        while b"READY=1" not in notify.recv(4096).split(b"\n"):
            pass
    finally:
        notify.close()
        shutil.rmtree(notify_dir, ignore_errors=True)
    return proc, port


def start_node(home: Path, url: str, profile_to: Path | None = None) -> subprocess.Popen[bytes]:
    """``openclaw --profile benchnode node run --url ... --token-file ...``."""
    state = home / ".openclaw-benchnode"
    state.mkdir()
    (state / "openclaw.json").write_text(json.dumps({"nodeHost": {"displayName": "bench"}}))
    token_file = home / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env["HOME"] = str(home)
    cli = [*_python(profile_to, "node"), "-m", "openclaw_multi.cli.main"]
    cmd = [*cli, "--profile", "benchnode", "node"]
    args = ["run", "--url", url, "--token-file", str(token_file)]
    return subprocess.Popen([*cmd, *args], env=env, stderr=subprocess.DEVNULL)


async def wait_for_node(op: GatewayClient, deadline_s: float = 30.0) -> str:
    """The node's id once it is connected with ``system.info`` approved."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        nodes = (await op.call("node.list", timeout=5))["nodes"]
        for entry in nodes:
            if not entry["connected"] or entry["clientId"] != "node-host":
                continue
            if entry.get("pendingRequestId"):
                await op.call("node.pair.approve", {"requestId": entry["pendingRequestId"]})
            elif "system.info" in entry["commands"]:
                return str(entry["nodeId"])
        await asyncio.sleep(0.05)  # polling a condition with a deadline
    raise SystemExit("the node host did not connect within 30 s")


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    n = len(ordered)
    return {
        "count": n,
        "p50Ms": statistics.median(ordered) * 1000,
        "p90Ms": ordered[max(0, int(n * 0.90) - 1)] * 1000,
        "p99Ms": ordered[max(0, int(n * 0.99) - 1)] * 1000,
        "maxMs": ordered[-1] * 1000,
        "meanMs": statistics.fmean(ordered) * 1000,
    }


async def measure(
    port: int, count: int, warmup: int, gateway: psutil.Process, node: psutil.Process
) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{port}/"
    scopes = ("operator.read", "operator.write", "operator.admin", "operator.pairing")
    op = await GatewayClient.connect(url, token=TOKEN, scopes=scopes)
    try:
        node_id = await wait_for_node(op)
        perf = time.perf_counter

        async def invoke() -> None:
            params = {
                "nodeId": node_id,
                "command": "system.info",
                "idempotencyKey": str(uuid.uuid4()),
                "timeoutMs": 5000,
            }
            result = await op.call("node.invoke", params, timeout=10)
            assert result["ok"] is True and result["payload"]["displayName"] == "bench"

        for _ in range(warmup):
            await op.call("last-heartbeat", timeout=10)
            await invoke()
        heartbeat: list[float] = []
        invokes: list[float] = []
        cpu_gw0, cpu_node0 = _cpu(gateway), _cpu(node)
        for _ in range(count):
            t0 = perf()
            await op.call("last-heartbeat", timeout=10)
            t1 = perf()
            await invoke()
            t2 = perf()
            heartbeat.append(t1 - t0)
            invokes.append(t2 - t1)
        cpu_gw, cpu_node = _cpu(gateway) - cpu_gw0, _cpu(node) - cpu_node0
    finally:
        await op.close()
    inv, hb = summary(invokes), summary(heartbeat)
    return {
        "command": "system.info",
        "invoke": inv,
        "heartbeat": hb,
        "ratioP50": inv["p50Ms"] / hb["p50Ms"],
        "ratioP99": inv["p99Ms"] / hb["p99Ms"],
        # both CPU figures cover the heartbeats too (the gateway's share of those is small)
        "gatewayCpuUsPerRound": cpu_gw / count * 1e6,
        "nodeCpuUsPerInvoke": cpu_node / count * 1e6,
        "goalP99Ms": GOAL_P99_MS,
        "meetsGoal": inv["p99Ms"] <= GOAL_P99_MS,
    }


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    inv, hb = result["invoke"], result["heartbeat"]
    rows = [
        f"Machine: {m['nproc']} CPU ({m['cpu']}), Python {m['python']}, {result['date']}, "
        f"load average at start {m['loadavg']}",
        "",
        "| round trip (1 sequential) | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
        f"| `node.invoke` system.info | {inv['p50Ms']:.3f} | {inv['p90Ms']:.3f} | "
        f"{inv['p99Ms']:.3f} | {inv['maxMs']:.3f} |",
        f"| `last-heartbeat` (baseline) | {hb['p50Ms']:.3f} | {hb['p90Ms']:.3f} | "
        f"{hb['p99Ms']:.3f} | {hb['maxMs']:.3f} |",
        f"| ratio invoke / heartbeat | {result['ratioP50']:.2f}x | | {result['ratioP99']:.2f}x | |",
        "",
        f"{inv['count']} rounds. CPU per round: gateway {result['gatewayCpuUsPerRound']:.0f} us, "
        f"node host {result['nodeCpuUsPerInvoke']:.0f} us. "
        f"Goal p99 <= {GOAL_P99_MS:g} ms: {'met' if result['meetsGoal'] else 'NOT met'}.",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    parser.add_argument("--out", type=Path, help="also write the JSON here (file or folder)")
    parser.add_argument(
        "--cprofile", type=Path, metavar="DIR", help="run both processes under cProfile into DIR"
    )
    args = parser.parse_args()
    if not 1 <= args.count <= 100_000:
        parser.error("--count must be 1..100000")
    home = Path(tempfile.mkdtemp(prefix="ocbench-nodes-"))
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "argv": sys.argv[1:],
    }
    gateway_proc = node_proc = None
    try:
        if args.cprofile is not None:
            args.cprofile.mkdir(parents=True, exist_ok=True)
        gateway_proc, port = start_gateway(home, args.cprofile)
        node_proc = start_node(home, f"ws://127.0.0.1:{port}/", args.cprofile)
        result.update(
            runtime.run(
                measure(
                    port,
                    args.count,
                    args.warmup,
                    psutil.Process(gateway_proc.pid),
                    psutil.Process(node_proc.pid),
                )
            )
        )
    finally:
        for proc in (node_proc, gateway_proc):
            if proc is not None:
                stop(proc)
        shutil.rmtree(home, ignore_errors=True)
    if args.out is not None:
        out = args.out / "bench_nodes.json" if args.out.is_dir() else args.out
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2) if args.json else render(result))


if __name__ == "__main__":
    main()
