"""Load benchmark: many authenticated connections on one gateway, a few of them busy.

Run on demand (not in CI):
    .venv/bin/python scripts/bench_load.py [--connections 1000] [--active 32] [--seconds 20]

One gateway (token auth, tick every second so broadcasts flow) gets ``--connections``
authenticated clients. ``--active`` of them run sequential ``last-heartbeat`` requests for
``--seconds`` while all of them receive ``tick`` (and ``presence``) events. Reported:
request throughput and p50/p99/max latency of the active clients, events delivered, the
gateway's RSS and open file descriptors before, during and after (leak check: after all
clients leave, fds return to the idle count). Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import uvloop
from picows import WSListener, WSMsgType, ws_connect

ROOT = Path(__file__).resolve().parents[1]
REQUEST = b'{"type":"req","id":"1:hb","method":"last-heartbeat"}'
WAVE = 30


class LoadClient(WSListener):  # type: ignore[misc]
    """Handshakes, then counts events and times its own requests."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.transport: Any = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reply: asyncio.Future[None] | None = None
        self.events = 0

    def on_ws_connected(self, transport: Any) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        head = bytes(frame.get_payload_as_memoryview()[:64])
        if head.startswith(b'{"type":"event","event":"connect.challenge"'):
            params = {
                "minProtocol": 4,
                "maxProtocol": 4,
                "client": {"id": "test", "version": "load", "platform": "linux", "mode": "test"},
                "scopes": ["operator.read"],
                "auth": {"token": self.token},
            }
            frame_out = {"type": "req", "id": "c", "method": "connect", "params": params}
            transport.send(WSMsgType.TEXT, json.dumps(frame_out).encode())
        elif head.startswith(b'{"type":"res","id":"c"'):
            if not self.ready.done():
                self.ready.set_result(None)
        elif head.startswith(b'{"type":"res"'):
            if self.reply is not None and not self.reply.done():
                self.reply.set_result(None)
        else:
            self.events += 1

    async def request(self) -> float:
        self.reply = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        self.transport.send(WSMsgType.TEXT, REQUEST)
        await asyncio.wait_for(self.reply, 5)
        return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_figures(proc: psutil.Process) -> dict[str, float]:
    return {"rssMB": proc.memory_info().rss / 2**20, "fds": proc.num_fds()}


async def run_load(
    port: int, token: str, args: argparse.Namespace, gw: psutil.Process
) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{port}/"
    clients: list[LoadClient] = []
    opened = time.perf_counter()
    # Waves of 30: the gateway allows 32 unauthenticated sockets per peer address.
    for start in range(0, args.connections, WAVE):
        batch = await asyncio.gather(
            *(
                ws_connect(lambda: LoadClient(token), url)
                for _ in range(min(WAVE, args.connections - start))
            )
        )
        clients.extend(client for _, client in batch)
        await asyncio.wait_for(asyncio.gather(*(c.ready for c in clients[start:])), 30)
    connect_seconds = time.perf_counter() - opened
    during_idle = gateway_figures(gw)
    active = clients[: args.active]
    latencies: list[float] = []
    deadline = time.perf_counter() + args.seconds

    async def worker(client: LoadClient) -> None:
        while time.perf_counter() < deadline and len(latencies) < 10_000_000:
            latencies.append(await client.request())

    cpu0 = sum(gw.cpu_times()[:2])
    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in active))
    wall = time.perf_counter() - started
    cpu = sum(gw.cpu_times()[:2]) - cpu0
    during_load = gateway_figures(gw)
    events = sum(c.events for c in clients)
    for _, client in enumerate(clients):
        client.transport.disconnect()
    latencies.sort()
    return {
        "connections": args.connections,
        "active": args.active,
        "connectSeconds": connect_seconds,
        "requests": len(latencies),
        "requestsPerSecond": len(latencies) / wall,
        "gatewayCpuPercent": 100 * cpu / wall,
        "p50Ms": statistics.median(latencies) * 1000,
        "p99Ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "maxMs": latencies[-1] * 1000,
        "eventsDelivered": events,
        "gatewayAllConnectedIdle": during_idle,
        "gatewayUnderLoad": during_load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--active", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (max(soft, min(hard, args.connections * 2 + 256)), hard)
    )
    home = Path(tempfile.mkdtemp(prefix="ocload-"))
    token = secrets.token_urlsafe(24)
    state = home / ".openclaw-load"
    state.mkdir()
    (state / "openclaw.json").write_text(
        json.dumps({"gateway": {"auth": {"mode": "token"}, "limits": {"tickIntervalMs": 1000}}})
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env.update(HOME=str(home), OPENCLAW_PROFILE="load", OPENCLAW_GATEWAY_TOKEN=token)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openclaw_multi.gateway",
            "--profile",
            "load",
            "--port",
            str(port),
            "--quiet",
        ],
        env=env,
    )
    try:
        gw = psutil.Process(proc.pid)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        idle = gateway_figures(gw)
        result = uvloop.run(run_load(port, token, args, gw))
        after_deadline = time.monotonic() + 10  # wait (bounded) for the server to see every close
        while gw.num_fds() > idle["fds"] and time.monotonic() < after_deadline:
            time.sleep(0.05)
        result["gatewayIdleBefore"] = idle
        result["gatewayIdleAfter"] = gateway_figures(gw)
        result["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)
    out = ROOT / "scripts" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_load.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
