"""The node host's pure rules (client/nodehost/rules.py), without sockets or processes."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from openclaw_multi.client.nodehost.rules import (
    CappedBuffer,
    PathRefused,
    ProgramRefused,
    backoff_delay,
    canonical_roots,
    child_environment,
    inside,
    resolve_in_roots,
    resolve_program,
)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f.txt").write_text("x")
    outside = tmp_path / "rootish"  # shares a prefix with root: must not count as inside
    outside.mkdir()
    (outside / "s.txt").write_text("s")
    (root / "link-out").symlink_to(outside / "s.txt")
    (root / "link-in").symlink_to(root / "a" / "f.txt")
    (root / "dir-out").symlink_to(outside)
    return {"root": root, "outside": outside}


def test_canonical_roots_expand_resolve_and_dedupe(tmp_path: Path, tree: dict[str, Path]) -> None:
    link = tmp_path / "root-link"
    link.symlink_to(tree["root"])
    roots = canonical_roots([str(tree["root"]), str(link), " ", "root"], base=str(tmp_path))
    assert roots == (str(tree["root"].resolve()),)
    assert canonical_roots(["~"]) == (os.path.realpath(os.path.expanduser("~")),)


def test_inside_is_by_component_not_prefix() -> None:
    assert inside("/srv/data", "/srv/data") and inside("/srv/data/x/y", "/srv/data")
    assert not inside("/srv/database", "/srv/data") and not inside("/srv", "/srv/data")
    assert inside("/anything", "/")


def test_resolve_in_roots_accepts_paths_and_links_inside(tree: dict[str, Path]) -> None:
    roots = canonical_roots([str(tree["root"])])
    root = str(tree["root"].resolve())
    assert resolve_in_roots(f"{root}/a/f.txt", roots) == f"{root}/a/f.txt"
    assert resolve_in_roots(f"{root}/a/../a/f.txt", roots) == f"{root}/a/f.txt"
    assert resolve_in_roots(f"{root}/link-in", roots) == f"{root}/a/f.txt"
    assert resolve_in_roots(f"{root}/missing", roots) == f"{root}/missing"  # open says so


@pytest.mark.parametrize(
    ("path", "code", "message"),
    [
        (None, "INVALID_PATH", "path required"),
        ("", "INVALID_PATH", "path required"),
        (7, "INVALID_PATH", "path required"),
        ("a/f.txt", "INVALID_PATH", "path must be absolute"),
        ("/x\0y", "INVALID_PATH", "path contains NUL byte"),
    ],
)
def test_resolve_in_roots_refuses_bad_input(
    tree: dict[str, Path], path: object, code: str, message: str
) -> None:
    with pytest.raises(PathRefused) as refused:
        resolve_in_roots(path, canonical_roots([str(tree["root"])]))
    assert (refused.value.code, refused.value.message) == (code, message)


@pytest.mark.parametrize("relative", ["link-out", "dir-out/s.txt", "a/../../rootish/s.txt", "../"])
def test_resolve_in_roots_refuses_escapes(tree: dict[str, Path], relative: str) -> None:
    roots = canonical_roots([str(tree["root"])])
    with pytest.raises(PathRefused) as refused:
        resolve_in_roots(f"{roots[0]}/{relative}", roots)
    assert refused.value.code == "PATH_POLICY_DENIED"
    assert "outside the node's allowed roots" in refused.value.message


def test_resolve_in_roots_without_roots_refuses_everything(tree: dict[str, Path]) -> None:
    with pytest.raises(PathRefused) as refused:
        resolve_in_roots(str(tree["root"]), ())
    assert (
        refused.value.code == "PATH_POLICY_DENIED" and "nodeHost.fsRoots" in refused.value.message
    )


def _exe(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def bins(tmp_path: Path) -> dict[str, str]:
    first, second = tmp_path / "bin1", tmp_path / "bin2"
    first.mkdir()
    second.mkdir()
    tool = _exe(first / "tool")
    _exe(second / "tool")
    _exe(second / "other")
    (first / "multi").symlink_to(tool)  # a multi-call binary under another name
    (first / "plain").write_text("not executable")
    return {"first": str(first), "second": str(second), "path": f"{first}:{second}"}


def test_resolve_program_by_name_and_absolute_path(bins: dict[str, str]) -> None:
    path = bins["path"]
    first = bins["first"]
    assert resolve_program("tool", ["tool"], path) == f"{first}/tool"
    assert resolve_program(f"{first}/tool", ["tool"], path) == f"{first}/tool"
    assert resolve_program("tool", [f"{first}/tool"], path) == f"{first}/tool"
    assert resolve_program("other", [" other ", "tool"], path) == f"{bins['second']}/other"


@pytest.mark.parametrize(
    ("argv0", "allowlist", "code", "message"),
    [
        ("other", ["tool"], "SYSTEM_RUN_DENIED", "other is not on this node's run allowlist"),
        # the same name elsewhere than PATH finds it is another program
        (
            "{second}/tool",
            ["tool"],
            "SYSTEM_RUN_DENIED",
            "tool is not on this node's run allowlist",
        ),
        # a symlink to an allowed binary under another name is not that name
        ("multi", ["tool"], "SYSTEM_RUN_DENIED", "multi is not on this node's run allowlist"),
        ("plain", ["plain"], "SYSTEM_RUN_DENIED", "no programs are allowed on this node"),
        ("nope", ["tool"], "SYSTEM_RUN_DENIED", "nope is not on this node's run allowlist"),
        ("tool", [], "SYSTEM_RUN_DENIED", "no programs are allowed on this node"),
        ("tool", ["bin1/tool"], "SYSTEM_RUN_DENIED", "no programs are allowed on this node"),
        ("./tool", ["tool"], "INVALID_REQUEST", "relative program path not allowed: ./tool"),
    ],
)
def test_resolve_program_refusals(
    bins: dict[str, str], argv0: str, allowlist: list[str], code: str, message: str
) -> None:
    with pytest.raises(ProgramRefused) as refused:
        resolve_program(argv0.format(**bins), allowlist, bins["path"])
    assert refused.value.code == code
    assert refused.value.message.startswith(message)


def test_resolve_program_ignores_relative_path_entries(bins: dict[str, str]) -> None:
    # "." or "" on PATH would run whatever sits in the cwd: never looked at
    with pytest.raises(ProgramRefused):
        resolve_program("tool", ["tool"], f".:{os.pathsep}")


def test_child_environment_drops_secrets() -> None:
    env = {
        "PATH": "/bin",
        "HOME": "/h",
        "OPENCLAW_GATEWAY_TOKEN": "t",
        "OPENCLAW_PROFILE": "p",
        "GITHUB_TOKEN": "g",
        "db_password": "d",
        "AWS_SECRET_ACCESS_KEY": "a",
        "OPENAI_API_KEY": "o",
        "LANG": "C",
    }
    assert child_environment(env) == {"PATH": "/bin", "HOME": "/h", "LANG": "C"}


def test_capped_buffer_keeps_the_head() -> None:
    buffer = CappedBuffer(5)
    buffer.feed(b"abc")
    assert not buffer.truncated and buffer.text() == "abc"
    buffer.feed(b"defg")
    buffer.feed(b"hij")
    assert buffer.text() == "abcde" and buffer.truncated and buffer.dropped == 5
    cut = CappedBuffer(2)
    cut.feed("aé".encode())  # a character cut in two by the cap
    assert cut.text() == "a\ufffd" and cut.truncated and cut.dropped == 1
    exact = CappedBuffer(2)
    exact.feed(b"ab")
    assert exact.text() == "ab" and not exact.truncated


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, base=0.5, cap=30.0, rng=rng) for n in range(12)]
    for n, delay in enumerate(delays):
        ceiling = min(30.0, 0.5 * 2**n)
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 30.0 and delays[-1] >= 15.0
    assert backoff_delay(10_000, cap=30.0) <= 30.0  # no overflow on a long outage
    spread = {round(backoff_delay(3, rng=random.Random(seed)), 6) for seed in range(20)}
    assert len(spread) > 10  # hosts that lost one gateway do not return in step
