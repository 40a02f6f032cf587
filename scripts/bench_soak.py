#!/usr/bin/env python3
"""Soak: N profiles under one supervisor for a while, a gateway killed (-9) every few seconds.

    .venv/bin/python scripts/bench_soak.py --minutes 10              # 10 profiles, kill every 5 s
    .venv/bin/python scripts/bench_soak.py --minutes 2 --out /tmp/soak.json
    .venv/bin/python scripts/bench_soak.py --profiles 50 --start-list  # "50 profiles on one host"

Not in CI. Each run uses a fresh throw-away home (helpers from bench_profiles.py): real
supervisor, real gateways, loopback only. Round-robin, one gateway is killed with SIGKILL
(after checking its pid, start time and command line against its identity file), and the
script waits until the supervisor reports a new RUNNING process answering ``/readyz`` and
every other profile is healthy too. Each cycle samples the supervisor's RSS and fds and the
gateways' total RSS and fds. Reported: time to healthy after each kill (median/p90/max),
restarts, supervisor RSS growth after warm-up (target <= 10 %), supervisor fd growth
(target 0), gateways' fds per process (target: the idle count, every time).

The restart policy is the default except the burst limit (raised: a soak kills on purpose
more often than a real crash loop would be allowed to).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_profiles as bp

from openclaw_multi.client.control import SupervisorClient
from openclaw_multi.protocol.control import Status

KNOBS = {"OPENCLAW_SUPERVISOR_BURST_LIMIT": "1000"}
_base_env = bp._env
bp._env = lambda home: {**_base_env(home), **KNOBS}  # every CLI run gets the soak knobs


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Soak:
    def __init__(self, bench: bp.Bench) -> None:
        self.bench = bench
        self.client = SupervisorClient(bench.home, env=bp._env(bench.home))
        self.port = dict(zip(bench.names, bench.ports, strict=True))

    def status(self) -> dict[str, Any]:
        reply = self.client.request(Status(), timeout=10, autostart=False)
        return {p.name: p for p in reply.profiles}

    def gateway_pid(self, name: str) -> tuple[int, int] | None:
        ident = bp.identity(self.bench.home, name)
        if ident is None:
            return None
        pid, start = int(ident["pid"]), int(ident["startTime"])
        try:
            proc = psutil.Process(pid)
            argv = " ".join(proc.cmdline())
        except psutil.Error:
            return None
        if "openclaw_multi.gateway" not in argv:
            return None
        self.bench.pids.add(pid)
        return pid, start

    def all_healthy(self) -> bool:
        statuses = self.status()
        return all(
            statuses[n].state == "RUNNING" and bp.readyz(p, timeout=0.5)
            for n, p in self.port.items()
        )

    def kill_and_wait(self, name: str, timeout: float = 30.0) -> float:
        found = self.gateway_pid(name)
        if found is None:
            raise SystemExit(f"{name}: no verified gateway to kill")
        pid, _ = found
        os.kill(pid, signal.SIGKILL)
        killed = time.perf_counter()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()[name]
            if (
                status.state == "RUNNING"
                and status.pid not in (None, pid)
                and bp.readyz(self.port[name], timeout=0.5)
            ):
                healthy = time.perf_counter() - killed
                if status.pid is not None:
                    self.bench.pids.add(status.pid)
                break
            time.sleep(0.01)  # polling a condition, bounded by the deadline
        else:
            raise SystemExit(f"{name}: not healthy {timeout:.0f}s after kill -9")
        while not self.all_healthy():  # the others must be unaffected
            if time.monotonic() > deadline:
                raise SystemExit("a profile other than the killed one is unhealthy")
            time.sleep(0.01)
        return healthy

    def sample(self) -> dict[str, Any]:
        sup = psutil.Process(self.bench.supervisor_pid())
        gw_rss = 0
        gw_fds: list[int] = []
        for name in self.bench.names:
            found = self.gateway_pid(name)
            if found is not None:
                try:
                    gw_rss += psutil.Process(found[0]).memory_info().rss
                    gw_fds.append(_fds(found[0]))
                except (psutil.Error, OSError):
                    pass
        return {
            "t": time.monotonic(),
            "supRss": sup.memory_info().rss,
            "supFds": _fds(sup.pid),
            "gwRssTotal": gw_rss,
            "gwFdsMax": max(gw_fds) if gw_fds else None,
            "gwFdsMin": min(gw_fds) if gw_fds else None,
        }


def soak(n: int, minutes: float, kill_every: float) -> dict[str, Any]:
    with bp.Bench(n) as bench:
        start_s = bench.start_all()
        s = Soak(bench)
        samples = [s.sample()]
        heal: list[float] = []
        end = time.monotonic() + minutes * 60
        i = 0
        next_kill = time.monotonic() + kill_every
        while time.monotonic() < end:
            time.sleep(max(0.0, next_kill - time.monotonic()))  # pacing, not synchronisation
            next_kill += kill_every
            heal.append(s.kill_and_wait(bench.names[i % n]))
            i += 1
            samples.append(s.sample())
            if i % n == 0:
                print(
                    f"{i} kills, heal median {statistics.median(heal) * 1000:.0f} ms, "
                    f"supervisor {samples[-1]['supRss'] / 2**20:.1f} MiB "
                    f"{samples[-1]['supFds']} fds",
                    flush=True,
                )
        statuses = s.status()
        restarts = sum(p.restarts for p in statuses.values())
        # Warm-up: the first full round of kills (every unit has restarted once).
        warm = samples[min(n, len(samples) - 1)]
        last = samples[-1]
        return {
            "profiles": n,
            "minutes": minutes,
            "killEvery": kill_every,
            "startAllS": round(start_s, 2),
            "kills": len(heal),
            "restarts": restarts,
            "healMedianMs": round(statistics.median(heal) * 1000),
            "healP90Ms": round(_pct(heal, 0.9) * 1000),
            "healMaxMs": round(max(heal) * 1000),
            "supRssStartMiB": round(samples[0]["supRss"] / 2**20, 2),
            "supRssWarmMiB": round(warm["supRss"] / 2**20, 2),
            "supRssEndMiB": round(last["supRss"] / 2**20, 2),
            "supRssGrowthPct": round((last["supRss"] / warm["supRss"] - 1) * 100, 1),
            "supFdsStart": samples[0]["supFds"],
            "supFdsWarm": warm["supFds"],
            "supFdsEnd": last["supFds"],
            "gwFdsRange": [
                min(x["gwFdsMin"] for x in samples if x["gwFdsMin"] is not None),
                max(x["gwFdsMax"] for x in samples if x["gwFdsMax"] is not None),
            ],
            "gwRssTotalMiB": [
                round(samples[0]["gwRssTotal"] / 2**20, 1),
                round(last["gwRssTotal"] / 2**20, 1),
            ],
        }


def start_list(n: int) -> dict[str, Any]:
    with bp.Bench(n) as bench:
        start_s = bench.start_all()
        timings = []
        rows: list[dict[str, Any]] = []
        for _ in range(5):
            started = time.perf_counter()
            result = bp.run(bench.home, "profiles", "list", "--json")
            timings.append(time.perf_counter() - started)
            if result.returncode != 0:
                raise SystemExit(f"list: exit {result.returncode}: {result.stderr.strip()}")
            rows = json.loads(result.stdout)
        healthy = sum(1 for r in rows if r["state"] == "RUNNING" and r["health"] == "ok")
        sup = psutil.Process(bench.supervisor_pid())
        return {
            "profiles": n,
            "startAllS": round(start_s, 2),
            "listMedianMs": round(statistics.median(timings) * 1000),
            "listMaxMs": round(max(timings) * 1000),
            "healthy": healthy,
            "supervisorRssMiB": round(sup.memory_info().rss / 2**20, 1),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--kill-every", type=float, default=5.0)
    parser.add_argument("--start-list", action="store_true", help="only start N and list them")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.out is not None and args.out.is_dir():  # a folder: the file goes inside it
        args.out = args.out / "soak.json"
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": bp.machine(),
    }
    if args.start_list:
        result = start_list(args.profiles)
    else:
        result = soak(args.profiles, args.minutes, args.kill_every)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"meta": meta, "result": result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
