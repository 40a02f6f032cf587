"""Replay tests/fuzz/corpus/<target>/* through its target: inputs that once found a bug, or
edge cases worth keeping. Add a file there for every fuzzing find (name says what it is)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fuzz.targets import TARGETS, make_target

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p for name in TARGETS for p in (CORPUS / name).glob("*") if p.is_file())


@pytest.fixture(scope="module")
def targets() -> Iterator[dict[str, Any]]:
    made: dict[str, Any] = {}
    yield made
    for target in made.values():
        target.close()


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_corpus_case(targets: dict[str, Any], case: Path) -> None:
    name = case.parent.name
    if name not in targets:
        targets[name] = make_target(name)
    targets[name](case.read_bytes())


def test_every_target_has_a_corpus() -> None:
    assert all(any((CORPUS / name).glob("*")) for name in TARGETS)
