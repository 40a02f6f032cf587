"""Clock jumps: the supervisor decides on monotonic time only, so a wall clock that jumps
(NTP step, suspend, a person running ``date -s``) cannot fake a stable run, empty the burst
window, or stretch a backoff.

Two halves make the argument: (1) the restart policy gives the same decisions for the same
monotonic ``now`` whatever the wall clock did, and would be fooled if fed wall time; (2) an
AST walk proves every clock read in ``openclaw_multi/supervisor/`` is monotonic, except the
one display-only timestamp (``started_at``, shown as uptime).
"""

from __future__ import annotations

import ast
from pathlib import Path

from openclaw_multi.supervisor.policy import RestartPolicy, RestartTracker

SUPERVISOR = Path(__file__).resolve().parents[2] / "openclaw_multi" / "supervisor"
POLICY = RestartPolicy(backoff_initial=0.5, stable_after=30, burst_limit=3, burst_window=60)
DAY = 86400.0


def crash_loop(clock: list[float]) -> list[str]:
    """Feed a crash loop (start, crash 1 s later) with ``clock`` readings; the decisions."""
    tracker = RestartTracker(POLICY)
    actions: list[str] = []
    for i in range(0, len(clock), 2):
        tracker.record_start(clock[i])
        decision = tracker.record_exit(clock[i + 1], 1)
        actions.append(f"{decision.action} {decision.delay:g}")
        if decision.action == "fatal":
            break
    return actions


def test_wall_clock_jumps_do_not_change_decisions() -> None:
    # Real elapsed time: each start crashes after 1 s, backoff between; six readings.
    monotonic = [0.0, 1.0, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5]
    # The wall clock during the same run jumps forward a day, then back two.
    jumps = [0.0, 0.0, DAY, DAY, -DAY, -DAY, -DAY, -DAY]
    wall = [m + j for m, j in zip(monotonic, jumps, strict=True)]

    expected = ["restart 0.5", "restart 1", "fatal 0"]
    assert crash_loop(monotonic) == expected  # what the supervisor does (monotonic)
    # Fed the wall clock, the forward jump empties the burst window and counts as a
    # stable run: the loop would never end in FATAL within the limit.
    assert crash_loop(wall) != expected


def test_backoff_and_stable_run_are_measured_on_the_given_clock() -> None:
    tracker = RestartTracker(POLICY)
    tracker.record_start(100.0)
    assert tracker.record_exit(101.0, 1).delay == 0.5
    tracker.record_start(101.5)
    # 2 s of monotonic time later (whatever the wall clock says) is not a stable run.
    assert tracker.record_exit(103.5, 1).delay == 1.0


def _clock_reads(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else ""
            call = f"{name}.{node.func.attr}"
            if call in ("time.time", "time.time_ns", "datetime.now", "datetime.utcnow"):
                found.append((node.lineno, call))
    return found


def test_supervisor_reads_wall_time_for_display_only() -> None:
    wall_reads: dict[str, list[str]] = {}
    for path in sorted(SUPERVISOR.glob("*.py")):
        for lineno, call in _clock_reads(path):
            line = path.read_text().splitlines()[lineno - 1]
            wall_reads.setdefault(path.name, []).append(line.strip())
            del call
    # The only wall-clock read: when a gateway started, for display (uptime in listings).
    assert wall_reads == {
        "child.py": ["self.started_at = started_at if started_at is not None else time.time()"]
    }
