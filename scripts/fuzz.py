#!/usr/bin/env python3
"""Fuzz one target for long (benchmark mode; not in CI).

    .venv/bin/python scripts/fuzz.py --target config --examples 100000
    .venv/bin/python scripts/fuzz.py --target all --examples 20000 --json out.json

Targets are those of tests/fuzz/targets.py (http, handshake, config, control, ws). Runs
hypothesis with ``max_examples`` from the command line, counts inputs per second, and on a
failure prints the shrunk input and (with ``--save``) writes it to
``tests/fuzz/corpus/<target>/found-<sha1>`` so the normal test run replays it from then on.
Exit status 1 if any target found a crash.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.fuzz.targets import TARGETS, make_target, strategy  # noqa: E402


def fuzz(name: str, examples: int, save: bool) -> dict[str, Any]:
    target = make_target(name)
    count = 0
    last: list[bytes] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=strategy(name))
    def run(data: bytes) -> None:
        nonlocal count
        count += 1
        last[:] = [data]
        target(data)

    started = time.perf_counter()
    crash: str | None = None
    found: bytes | None = None
    try:
        run()
    except Exception as err:  # hypothesis re-raises the shrunk failure
        crash = "".join(traceback.format_exception_only(type(err), err)).strip()
        found = last[0] if last else None
    finally:
        elapsed = time.perf_counter() - started
        target.close()
    result: dict[str, Any] = {
        "target": name,
        "inputs": count,
        "seconds": round(elapsed, 2),
        "inputsPerSecond": round(count / elapsed, 1) if elapsed else None,
        "crash": crash,
    }
    if found is not None:
        result["input"] = found[:200].hex()
        if save:
            digest = hashlib.sha1(found).hexdigest()[:12]
            path = ROOT / "tests" / "fuzz" / "corpus" / name / f"found-{digest}"
            path.write_bytes(found)
            result["saved"] = str(path.relative_to(ROOT))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, choices=[*TARGETS, "all"])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--save", action="store_true", help="add a crashing input to the corpus")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    names = TARGETS if args.target == "all" else (args.target,)
    results = []
    for name in names:
        result = fuzz(name, args.examples, args.save)
        results.append(result)
        print(
            f"{name:10} {result['inputs']:>8,} inputs in {result['seconds']:>7.1f}s = "
            f"{result['inputsPerSecond']:>8,.0f}/s  crash: {result['crash'] or 'none'}",
            flush=True,
        )
    if args.json:
        meta = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return 1 if any(r["crash"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
