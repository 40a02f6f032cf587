"""Fixtures of the fault suite: a fresh home per test, cleaned up whatever happened."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.harness import FaultHome, fault_home


@pytest.fixture
def fh() -> Iterator[FaultHome]:
    with fault_home() as harness:
        yield harness
