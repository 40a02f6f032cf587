"""Gateway benchmark: the gateway against bare echo servers, measured side by side in one run.

Run on demand (not in CI):  .venv/bin/python scripts/bench_gateway.py [--seconds 3]

What it measures (all on loopback, every loop bounded in count and time):
  * round trips of a bare echo server on picows and on websockets (the floors), and of the
    gateway's ``last-heartbeat`` and cached ``health``, each over 1 connection sequential,
    16 pipelined on 1 connection, and 32 concurrent connections;
  * round trips per second of *server* CPU time (psutil user+system of the server process),
    which stays comparable on a shared, noisy machine; the gateway/echo ratio is the figure;
  * connect handshakes (challenge -> connect -> hello-ok) per second and their p50/p99;
  * start-to-first-successful-WebSocket-health time, and idle RSS of a fresh gateway.

The same client (picows on uvloop) drives every server. Results: JSON in
scripts/results/bench_gateway.json and a markdown table on stdout.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import uvloop
from bench_profiles import machine  # one description of the machine for every bench
from picows import WSListener, WSMsgType, ws_connect

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "scripts" / "results"
CONNECT = {
    "minProtocol": 4,
    "maxProtocol": 4,
    "client": {"id": "cli", "version": "bench", "platform": sys.platform, "mode": "cli"},
    "role": "operator",
    "scopes": ["operator.read", "operator.write", "operator.admin"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client(WSListener):  # type: ignore[misc]
    """Queues frames while handshaking, then just counts replies (no parsing on the hot path)."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.received = 0
        self.expected = 0
        self.waiter: asyncio.Future[None] | None = None
        self.frames: asyncio.Queue[bytes] | None = asyncio.Queue()
        self.only_responses = False  # gateway clients: ignore events (presence, tick)

    def on_ws_connected(self, transport: Any) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        if self.frames is not None:
            self.frames.put_nowait(frame.get_payload_as_bytes())
            return
        if self.only_responses and frame.get_payload_as_memoryview()[:13] != b'{"type":"res"':
            return
        self.received += 1
        if self.waiter is not None and self.received >= self.expected and not self.waiter.done():
            self.waiter.set_result(None)

    async def next_frame(self) -> bytes:
        assert self.frames is not None
        return await asyncio.wait_for(self.frames.get(), 10)

    async def round_trips(self, payload: bytes, count: int, depth: int) -> None:
        """Send ``count`` frames, keeping ``depth`` in flight, and wait for all replies."""
        loop = asyncio.get_running_loop()
        sent = 0
        while sent < count:
            batch = min(depth, count - sent)
            self.expected = self.received + batch
            self.waiter = loop.create_future()
            for _ in range(batch):
                self.transport.send(WSMsgType.TEXT, payload)
            sent += batch
            await asyncio.wait_for(self.waiter, 10)


async def open_client(port: int, *, gateway: bool) -> Client:
    _, client = await ws_connect(Client, f"ws://127.0.0.1:{port}/")
    if gateway:
        await client.next_frame()  # connect.challenge
        frame = {"type": "req", "id": "c", "method": "connect", "params": CONNECT}
        client.transport.send(WSMsgType.TEXT, json.dumps(frame).encode())
        hello = json.loads(await client.next_frame())
        assert hello["ok"], hello
    return client


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    gateway: bool
    ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.proc.pid)

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_echo(lib: str) -> Server:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "bench_echo_server.py"), lib, str(port)],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return Server(f"echo-{lib}", proc, port, gateway=False)


def start_gateway(home: Path, profile: str) -> tuple[Server, float, float]:
    """Start a gateway the way a supervisor does (sd_notify readiness).

    Returns the server, seconds from spawn to READY=1, and seconds from spawn to the first
    successful WebSocket ``health`` (a fresh client connecting once READY arrived).
    """
    port = free_port()
    notify_dir = Path(tempfile.mkdtemp(prefix="ocbn-"))
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_dir / "n.sock"))
    notify.settimeout(20)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env.update(HOME=str(home), NOTIFY_SOCKET=str(notify_dir / "n.sock"))
    cmd = [sys.executable, "-m", "openclaw_multi.gateway", "--profile", profile]
    started = time.perf_counter()
    proc = subprocess.Popen([*cmd, "--port", str(port), "--quiet"], env=env)
    try:
        while b"READY=1" not in notify.recv(4096).split(b"\n"):
            pass
        ready = time.perf_counter() - started
    finally:
        notify.close()
        shutil.rmtree(notify_dir, ignore_errors=True)
    healthy = asyncio.run(_first_health(port)) - started
    return Server(f"gateway-{profile}", proc, port, gateway=True), ready, healthy


async def _first_health(port: int) -> float:
    client = await open_client(port, gateway=True)
    client.transport.send(WSMsgType.TEXT, b'{"type":"req","id":"h","method":"health"}')
    reply = json.loads(await client.next_frame())
    while reply.get("type") != "res":  # skip events (presence) that may come first
        reply = json.loads(await client.next_frame())
    done = time.perf_counter()
    client.transport.disconnect()
    assert reply["ok"], reply
    return done


def request(method: str) -> bytes:
    return json.dumps({"type": "req", "id": "1:" + str(uuid.uuid4()), "method": method}).encode()


async def measure(server: Server, payload: bytes, mode: str, seconds: float) -> dict[str, float]:
    """Run one scenario for ~``seconds``: round trips per wall second and per server CPU-s."""
    conns = 32 if mode == "32 concurrent" else 1
    depth = 16 if mode == "16 pipelined" else 1
    clients = [await open_client(server.port, gateway=server.gateway) for _ in range(conns)]
    for client in clients:
        client.frames = None  # from here on, only count
        client.only_responses = server.gateway
    chunk = 200 if depth == 1 else 1600
    await asyncio.gather(*(c.round_trips(payload, chunk // 4, depth) for c in clients))  # warm up
    cpu0, wall0 = server.cpu(), time.perf_counter()
    total = 0
    while time.perf_counter() - wall0 < seconds:
        await asyncio.gather(*(c.round_trips(payload, chunk, depth) for c in clients))
        total += chunk * conns
    wall, cpu = time.perf_counter() - wall0, server.cpu() - cpu0
    for c in clients:
        c.transport.disconnect()
    return {
        "roundTrips": total,
        "perWallSecond": total / wall,
        "perServerCpuSecond": total / max(cpu, 1e-9),
    }


async def handshakes(server: Server, count: int) -> dict[str, float]:
    """Sequential connects. For the gateway: TCP + upgrade + challenge + connect/hello-ok.
    For an echo server, the same number of round trips: TCP + upgrade + one echo (the floor
    a two-round-trip handshake cannot beat on this machine)."""
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        client = await open_client(server.port, gateway=server.gateway)
        if not server.gateway:
            client.transport.send(WSMsgType.TEXT, b'{"type":"req","id":"c","method":"connect"}')
            await client.next_frame()
        latencies.append(time.perf_counter() - t0)
        client.transport.disconnect()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "count": count,
        "perSecond": count / wall,
        "p50Ms": statistics.median(latencies) * 1000,
        "p99Ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per scenario")
    parser.add_argument("--handshakes", type=int, default=500)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="ocbench-"))
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "scenarios": {},
    }
    try:
        starts, readies, rss = [], [], []
        for i in range(args.starts):
            gw, ready, healthy = start_gateway(home, f"start{i}")
            readies.append(ready)
            starts.append(healthy)
            time.sleep(
                0.3
            )  # let it settle before reading idle RSS (measurement, not synchronisation)
            rss.append(gw.ps.memory_info().rss)
            gw.stop()
        results["startToReadyS"] = {"median": statistics.median(readies), "max": max(readies)}
        results["startToFirstHealthS"] = {"median": statistics.median(starts), "max": max(starts)}
        results["idleRssMB"] = statistics.median(rss) / 2**20

        servers = [start_echo("picows"), start_echo("websockets"), start_gateway(home, "bench")[0]]
        try:
            for server in servers:
                methods = (
                    {"echo": request("last-heartbeat")}
                    if not server.gateway
                    else {
                        "last-heartbeat": request("last-heartbeat"),
                        "health": request("health"),
                    }
                )
                for method, payload in methods.items():
                    for mode in ("1 sequential", "16 pipelined", "32 concurrent"):
                        key = f"{server.name} {method} / {mode}"
                        results["scenarios"][key] = uvloop.run(
                            measure(server, payload, mode, args.seconds)
                        )
                        rate = results["scenarios"][key]["perServerCpuSecond"]
                        print(f"{key}: {rate:.0f} rt/cpu-s", file=sys.stderr)
            gateway = servers[-1]
            results["handshakes"] = uvloop.run(handshakes(gateway, args.handshakes))
            results["handshakeFloor"] = uvloop.run(handshakes(servers[0], args.handshakes))
            results["gatewayRssAfterLoadMB"] = gateway.ps.memory_info().rss / 2**20
        finally:
            for server in servers:
                server.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_gateway.json").write_text(json.dumps(results, indent=2))
    print(render(results))


def render(results: dict[str, Any]) -> str:
    """The markdown that goes into docs/benchmarks.md."""
    scenarios = results["scenarios"]
    m = results["machine"]
    lines = [
        f"Run {results['date']} on {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, "
        f"load average at start {m['loadavg']}",
        "",
        "| scenario | round trips/s (wall) | round trips/server CPU-s | vs echo-picows (CPU) |",
        "|---|---:|---:|---:|",
    ]
    for key, row in scenarios.items():
        floor = scenarios[f"echo-picows echo / {key.split(' / ')[1]}"]["perServerCpuSecond"]
        per_cpu = row["perServerCpuSecond"]
        lines.append(
            f"| {key} | {row['perWallSecond']:,.0f} | {per_cpu:,.0f} | {per_cpu / floor:.0%} |"
        )
    h, floor = results["handshakes"], results["handshakeFloor"]
    ready, health = results["startToReadyS"], results["startToFirstHealthS"]
    lines += [
        "",
        f"- connect handshakes: {h['perSecond']:,.0f}/s, p50 {h['p50Ms']:.2f} ms, "
        f"p99 {h['p99Ms']:.2f} ms ({h['count']} sequential); the same two round trips to "
        f"echo-picows (TCP + upgrade + one echo): p50 {floor['p50Ms']:.2f} ms, "
        f"p99 {floor['p99Ms']:.2f} ms",
        f"- spawn to sd_notify READY=1: median {ready['median'] * 1000:.0f} ms, "
        f"max {ready['max'] * 1000:.0f} ms",
        f"- spawn to first successful WebSocket health: median {health['median'] * 1000:.0f} ms,"
        f" max {health['max'] * 1000:.0f} ms",
        f"- idle gateway RSS: {results['idleRssMB']:.1f} MB; "
        f"after the load above: {results['gatewayRssAfterLoadMB']:.1f} MB",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
