#!/usr/bin/env python3
"""Benchmark the profiles CLI against a real supervisor and real gateways (not run in CI).

Measures, each in a fresh throw-away home (so nothing of the user's is touched):

* ``openclaw profiles start --all`` until every gateway is healthy, for 1, 10 and 30 profiles;
* ``openclaw profiles list`` with 30 running: whole-command wall time (measured from outside,
  interpreter start included) and the probe phase (``--timings``, printed by the command);
* restart latency: ``kill -9`` of a gateway until a new process answers ``/readyz`` 200;
* the supervisor's RSS and CPU while idle with 30 gateways (and the gateways' RSS).

Only loopback traffic; every wait has a deadline. Writes JSON and a markdown table::

    .venv/bin/python scripts/bench_profiles.py --out bench-results/profiles
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

CLI = [sys.executable, "-m", "openclaw_multi.cli.main"]
BLOCK = 20


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env.pop("NOTIFY_SOCKET", None)
    env["HOME"] = str(home)
    env["NO_COLOR"] = "1"
    return env


def run(home: Path, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=_env(home), capture_output=True, text=True, timeout=timeout
    )


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_blocks(count: int, start: int = 30000) -> list[int]:
    """``count`` base ports, BLOCK apart, whose whole block is free right now."""
    found: list[int] = []
    port = start
    while len(found) < count:
        if port + BLOCK > 60000:
            raise SystemExit("not enough free port blocks in 30000-60000")
        if all(_port_free(p) for p in (port, port + 1, port + 2)):
            found.append(port)
        port += BLOCK
    return found


def readyz(port: int, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def identity(home: Path, name: str) -> dict[str, Any] | None:
    path = home / f".openclaw-{name}" / "gateway.identity.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


class Bench:
    """One throw-away home with ``n`` profiles; cleans up everything it started."""

    def __init__(self, n: int) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="ocb-"))
        self.names = [f"p{i:02d}" for i in range(n)]
        self.ports = free_blocks(n)
        self.pids: set[int] = set()

    def __enter__(self) -> Bench:
        for name, port in zip(self.names, self.ports, strict=True):
            result = run(self.home, "profiles", "create", name, "--port", str(port))
            if result.returncode != 0:
                raise SystemExit(f"create {name}: {result.stderr.strip()}")
        return self

    def __exit__(self, *exc: object) -> None:
        run(self.home, "supervisor", "stop", "--all", timeout=180)
        for name in self.names:
            ident = identity(self.home, name)
            if ident is not None:
                self.pids.add(int(ident["pid"]))
        for pid in self.pids:
            try:
                proc = psutil.Process(pid)
                if "openclaw" in " ".join(proc.cmdline()):
                    proc.kill()
            except psutil.Error:
                pass
        shutil.rmtree(self.home, ignore_errors=True)

    def supervisor_pid(self) -> int:
        data = json.loads((self.home / ".openclaw-supervisor" / "supervisor.json").read_text())
        return int(data["pid"])

    def start_all(self) -> float:
        started = time.perf_counter()
        result = run(self.home, "profiles", "start", "--all", timeout=300)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"start --all: {result.stderr.strip()}")
        for name in self.names:
            ident = identity(self.home, name)
            if ident is not None:
                self.pids.add(int(ident["pid"]))
        bad = [p for p in self.ports if not readyz(p)]
        if bad:
            raise SystemExit(f"start --all returned but ports {bad} are not ready")
        return elapsed


def bench_start(n: int) -> float:
    with Bench(n) as bench:
        return bench.start_all()


def _timing(stderr: str, phase: str) -> float:
    """Seconds of ``phase`` from ``timings: supervisor 1.2ms collect 3.4ms probe ...``."""
    words = stderr.split("timings:", 1)[1].split()
    value = words[words.index(phase) + 1]
    return float(value.removesuffix("ms")) / 1000.0


def _floor(home: Path, code: str, runs: int = 5) -> float:
    """Median wall time of ``python -c code``: what any command pays before its own work."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=_env(home), check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_running_30(list_runs: int, restarts: int, idle_seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Bench(30) as bench:
        out["start_all_s"] = bench.start_all()
        walls: list[float] = []
        probes: list[float] = []
        inner: list[float] = []
        for _ in range(list_runs):
            t0 = time.perf_counter()
            result = run(bench.home, "profiles", "list", "--timings")
            walls.append(time.perf_counter() - t0)
            if result.returncode != 0:
                raise SystemExit(f"list exited {result.returncode}: {result.stderr.strip()}")
            probes.append(_timing(result.stderr, "probe"))
            inner.append(_timing(result.stderr, "command"))
        out["list_wall_s"] = {
            "median": statistics.median(walls),
            "p90": _pct(walls, 0.9),
            "max": max(walls),
        }
        out["list_probe_s"] = {"median": statistics.median(probes), "max": max(probes)}
        out["list_in_process_s"] = {"median": statistics.median(inner), "max": max(inner)}
        out["cli_import_s"] = _floor(bench.home, "import openclaw_multi.cli.main")
        out["python_start_s"] = _floor(bench.home, "pass")

        # Idle cost, measured before the restarts below change anything.
        sup = psutil.Process(bench.supervisor_pid())
        cpu0 = sup.cpu_times()
        time.sleep(idle_seconds)  # measuring idle CPU over a fixed window is the point here
        cpu1 = sup.cpu_times()
        busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        gateway_rss = 0
        for name in bench.names:
            ident = identity(bench.home, name)
            if ident is not None:
                with contextlib.suppress(psutil.Error):
                    gateway_rss += psutil.Process(int(ident["pid"])).memory_info().rss
        out["supervisor_idle"] = {
            "rss_mib": sup.memory_info().rss / 2**20,
            "cpu_percent": 100.0 * busy / idle_seconds,
            "window_s": idle_seconds,
        }
        out["gateways_rss_mib_total"] = gateway_rss / 2**20

        # Restart latency: a different profile each time, so no burst limit is reached.
        latencies: list[float] = []
        for name, port in list(zip(bench.names, bench.ports, strict=True))[:restarts]:
            ident = identity(bench.home, name)
            if ident is None:
                raise SystemExit(f"{name}: no identity file")
            old = int(ident["pid"])
            t0 = time.perf_counter()
            os.kill(old, signal.SIGKILL)
            deadline = t0 + 60.0
            while time.perf_counter() < deadline:
                now = identity(bench.home, name)
                if now is not None and int(now["pid"]) != old and readyz(port, 0.5):
                    bench.pids.add(int(now["pid"]))
                    break
                time.sleep(0.005)
            else:
                raise SystemExit(f"{name}: not restarted within 60 s")
            latencies.append(time.perf_counter() - t0)
        out["restart_after_kill9_s"] = {
            "median": statistics.median(latencies),
            "max": max(latencies),
            "samples": len(latencies),
        }
    return out


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def markdown(results: dict[str, Any]) -> str:
    r = results
    m = r["machine"]
    lines = [
        f"Machine: {m['nproc']} CPU ({m['cpu']}), Python {m['python']}, {m['date']}, "
        f"load average at start {m['loadavg']}",
        "",
        "| measure | value |",
        "|---|---|",
    ]
    for n, seconds in r["start_all_s"].items():
        lines.append(
            f"| `profiles start --all`, {n} profile(s), until all healthy | {seconds:.2f} s |"
        )
    big = r["running_30"]
    lines += [
        f"| `profiles list`, 30 running, whole command (median / p90 / max) | "
        f"{big['list_wall_s']['median'] * 1000:.0f} / {big['list_wall_s']['p90'] * 1000:.0f} / "
        f"{big['list_wall_s']['max'] * 1000:.0f} ms |",
        f"| `profiles list`, 30 running, probe phase (median / max) | "
        f"{big['list_probe_s']['median'] * 1000:.1f} / "
        f"{big['list_probe_s']['max'] * 1000:.1f} ms |",
        f"| `profiles list`, 30 running, in-process after imports (median / max) | "
        f"{big['list_in_process_s']['median'] * 1000:.0f} / "
        f"{big['list_in_process_s']['max'] * 1000:.0f} ms |",
        f"| `python -c 'import openclaw_multi.cli.main'` (floor of any command, median) | "
        f"{big['cli_import_s'] * 1000:.0f} ms |",
        f"| `python -c pass` (interpreter start, median) | {big['python_start_s'] * 1000:.0f} ms |",
        f"| restart after `kill -9` until `/readyz` 200 (median / max, "
        f"{big['restart_after_kill9_s']['samples']} samples) | "
        f"{big['restart_after_kill9_s']['median'] * 1000:.0f} / "
        f"{big['restart_after_kill9_s']['max'] * 1000:.0f} ms |",
        f"| supervisor idle with 30 gateways: RSS / CPU | "
        f"{big['supervisor_idle']['rss_mib']:.1f} MiB / "
        f"{big['supervisor_idle']['cpu_percent']:.2f} % |",
        f"| 30 gateways' RSS, total | {big['gateways_rss_mib_total']:.0f} MiB |",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/profiles"))
    parser.add_argument("--sizes", default="1,10,30", help="profile counts for start --all")
    parser.add_argument("--list-runs", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine(), "start_all_s": {}}
    for n in (int(x) for x in args.sizes.split(",")):
        results["start_all_s"][str(n)] = bench_start(n)
        print(f"start --all, {n}: {results['start_all_s'][str(n)]:.2f} s", file=sys.stderr)
    results["running_30"] = bench_running_30(args.list_runs, args.restarts, args.idle_seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
