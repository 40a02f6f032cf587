"""Hypothesis over every fuzz target (tests/fuzz/targets.py), sized for the normal run.

``scripts/fuzz.py --target NAME --examples N`` runs the same targets for long.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.conftest import wait_until
from tests.fuzz.targets import make_target, strategy

FAST = settings(max_examples=250, deadline=None, database=None)


@pytest.fixture(scope="module")
def target_cache() -> Iterator[dict[str, Any]]:
    made: dict[str, Any] = {}
    yield made
    for target in made.values():
        target.close()


def _target(cache: dict[str, Any], name: str) -> Any:
    if name not in cache:
        cache[name] = make_target(name)
    return cache[name]


@pytest.mark.parametrize("name", ["http", "handshake", "config", "control"])
def test_in_process_targets(target_cache: dict[str, Any], name: str) -> None:
    target = _target(target_cache, name)

    @FAST
    @given(data=strategy(name))
    def run(data: bytes) -> None:
        target(data)

    run()


@pytest.mark.e2e
def test_ws_garbage_after_upgrade_never_stops_a_live_gateway(
    target_cache: dict[str, Any],
) -> None:
    target = _target(target_cache, "ws")

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(data=strategy("ws"))
    def run(data: bytes) -> None:
        target(data)

    run()
    # Every fuzzing connection is gone again: no fd leaked by the frame path.
    wait_until(
        lambda: len(os.listdir(f"/proc/{target.gw.pid}/fd")) <= target.fds_before,
        10,
        "fds back to the idle count",
    )
