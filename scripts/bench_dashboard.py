#!/usr/bin/env python3
"""Benchmark the host dashboard with 30 running profiles, in headless system Chromium.

In a throw-away home (bench_profiles.Bench): 30 profiles started under a supervisor, then
``openclaw dashboard``. Measured, each from a fresh browser context:

* first paint of data: navigation start (``performance.now()`` origin) until all 30 rows
  are in the DOM (a MutationObserver installed before the page's own script records the
  moment), cold (the first page of the run) and warm (the next ``--runs``);
* responsiveness under live updates: long tasks (> 50 ms on the page's main thread, the
  Long Tasks API) and the slowest snapshot render, over ``--watch`` seconds of refreshes;
* the server side: bytes per snapshot, the dashboard process's CPU (refreshing 30 rows
  every 2 s, one page watching) and RSS.

Goal (issue 6): first paint of data <= 1 s. Not in CI; writes JSON and prints markdown::

    .venv/bin/python scripts/bench_dashboard.py [--runs 5] [--watch 10] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_profiles import CLI, Bench, _env, machine  # one throw-away home helper for all

URL_LINE = re.compile(r"(http://127\.0\.0\.1:\d+/)#secret=(\S+)")
PROFILES = 30

# Runs before the page's script: records when the 30th row appears and every long task.
PROBE = """
window.__bench = {rows: null, longTasks: [], renders: []};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__bench.longTasks.push(e.duration);
}).observe({type: 'longtask', buffered: true});
new MutationObserver(() => {
  const body = document.getElementById('rows');
  if (window.__bench.rows === null && body &&
      body.querySelectorAll('tr.profile').length >= __COUNT__) {
    window.__bench.rows = performance.now();
  }
}).observe(document, {subtree: true, childList: true});
const origParse = JSON.parse;
JSON.parse = function (text) {
  const t0 = performance.now();
  const value = origParse.apply(this, arguments);
  if (value && value.rows) {
    setTimeout(() => window.__bench.renders.push(performance.now() - t0), 0);
  }
  return value;
};
""".replace("__COUNT__", str(PROFILES))


def chromium() -> str:
    found = shutil.which(os.environ.get("OPENCLAW_CHROMIUM", "chromium"))
    if not found:
        raise SystemExit("no chromium on PATH (apt-get install chromium)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="warm page loads after the cold one")
    parser.add_argument("--watch", type=float, default=10.0, help="seconds of live updates")
    parser.add_argument("--out", type=Path, help="write the JSON result here")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    result: dict[str, Any] = {"machine": machine(), "profiles": PROFILES}
    with Bench(PROFILES) as bench:
        result["start_all_s"] = round(bench.start_all(), 2)
        out = bench.home / "dashboard.out"
        with out.open("wb") as sink:
            dash = subprocess.Popen(
                [*CLI, "dashboard", "--no-open", "--interval", "2"],
                env={**_env(bench.home), "PYTHONUNBUFFERED": "1"},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 30
            while not (match := URL_LINE.search(out.read_text())):
                if time.monotonic() > deadline or dash.poll() is not None:
                    raise SystemExit(f"no dashboard URL: {out.read_text()}")
                time.sleep(0.05)
            url, secret = match.group(1), match.group(2)
            flags = ["--no-sandbox"] if os.geteuid() == 0 else []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium(), args=flags)
                paints: list[float] = []
                for _ in range(args.runs + 1):
                    context = browser.new_context()
                    page = context.new_page()
                    page.add_init_script(PROBE)
                    page.goto(f"{url}#secret={secret}")
                    page.wait_for_function("() => window.__bench.rows !== null", timeout=30_000)
                    paints.append(page.evaluate("window.__bench.rows"))
                    context.close()
                result["first_paint_ms"] = {
                    "cold": round(paints[0], 1),
                    "warm_median": round(statistics.median(paints[1:]), 1),
                    "warm_max": round(max(paints[1:]), 1),
                }
                # Live updates: one page watching for --watch seconds.
                page = browser.new_page()
                page.add_init_script(PROBE)
                page.goto(f"{url}#secret={secret}")
                page.wait_for_function("() => window.__bench.rows !== null", timeout=30_000)
                page.evaluate("window.__bench.longTasks = []; window.__bench.renders = []")
                server = psutil.Process(dash.pid)
                cpu0 = server.cpu_times()
                time.sleep(args.watch)  # a fixed observation window, not a synchronisation
                cpu1 = server.cpu_times()
                watch = page.evaluate("window.__bench")
                cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
                result["server_cpu_pct"] = round(100 * cpu_s / args.watch, 1)
                result["server_rss_mib"] = round(server.memory_info().rss / 1048576, 1)
                size = len(page.request.get(f"{url}api/state").body())
                browser.close()
            renders = watch["renders"]
            result["live"] = {
                "seconds": args.watch,
                "snapshots": len(renders),
                "render_ms_median": round(statistics.median(renders), 1) if renders else None,
                "render_ms_max": round(max(renders), 1) if renders else None,
                "long_tasks": len(watch["longTasks"]),
                "longest_task_ms": round(max(watch["longTasks"]), 1) if watch["longTasks"] else 0,
            }
            result["snapshot_bytes"] = size
        finally:
            dash.send_signal(signal.SIGINT)
            try:
                dash.wait(timeout=10)
            except subprocess.TimeoutExpired:
                dash.kill()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    paint, live = result["first_paint_ms"], result["live"]
    print(
        f"\n| first paint of data, 30 profiles (cold / warm median / warm max) | "
        f"{paint['cold']} / {paint['warm_median']} / {paint['warm_max']} ms |\n"
        f"| snapshot render (median / max), long tasks over {live['seconds']:.0f} s | "
        f"{live['render_ms_median']} / {live['render_ms_max']} ms, {live['long_tasks']} |\n"
        f"| snapshot size | {result['snapshot_bytes']} bytes |\n"
        f"| server CPU while live (interval 2 s), RSS | {result['server_cpu_pct']} %, "
        f"{result['server_rss_mib']} MiB |"
    )


if __name__ == "__main__":
    main()
