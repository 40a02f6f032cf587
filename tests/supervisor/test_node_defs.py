"""nodes.json: load/save, bad files and bad entries (supervisor/node_defs.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from openclaw_multi.errors import UsageError
from openclaw_multi.supervisor.node_defs import (
    NodeDefinition,
    NodeFiles,
    ProcessPid,
    check_node_url,
    load_nodes,
    parse_node_name,
    save_nodes,
)


def test_round_trip_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "nodes.json"
    nodes = {"laptop": NodeDefinition(url="ws://gw:18789/", display_name="L", desired=True)}
    save_nodes(path, nodes)
    assert load_nodes(path) == nodes
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_missing_empty_corrupt_and_invalid(tmp_path: Path) -> None:
    path = tmp_path / "nodes.json"
    assert load_nodes(path) == {}
    path.write_text("  ")
    assert load_nodes(path) == {}
    path.write_text("{not json")
    assert load_nodes(path) == {}
    assert not path.exists() and (tmp_path / "nodes.json.corrupt").read_text() == "{not json"
    path.write_text(
        '{"version":1,"nodes":{"ok":{"url":"ws://a/"},"bad url":{"url":"ws://a/"},'
        '"x":{"url":"http://a/"}}}'
    )
    assert list(load_nodes(path)) == ["ok"]


def test_names_and_urls() -> None:
    assert parse_node_name("laptop") == "laptop"
    for bad in ("default", "no spaces", ""):
        with pytest.raises(UsageError):
            parse_node_name(bad)
    assert check_node_url("wss://gw.example:443/") == "wss://gw.example:443/"
    for bad in ("http://gw/", "ws://", "ws://gw:99999/"):
        with pytest.raises(UsageError):
            check_node_url(bad)


def test_a_url_with_credentials_is_refused_without_echoing_them(tmp_path: Path) -> None:
    """They would sit in nodes.json and on the node host's command line."""
    for url in ("ws://user:s3cret@gw:18789/", "wss://s3cret@gw/"):
        with pytest.raises(UsageError, match="use --token") as caught:
            check_node_url(url)
        assert "s3cret" not in str(caught.value)
    # One already on disk (written by an older version) is not loaded.
    path = tmp_path / "nodes.json"
    path.write_text('{"version": 1, "nodes": {"laptop": {"url": "ws://u:p@gw/"}}}')
    assert load_nodes(path) == {}


def test_pid_files(tmp_path: Path) -> None:
    files = NodeFiles(tmp_path)
    files.ensure_dir()
    assert stat.S_IMODE(files.nodes_dir.stat().st_mode) == 0o700
    assert files.read_pid("laptop") is None
    files.write_pid("laptop", ProcessPid(pid=12, start_time=34))
    assert files.read_pid("laptop") == ProcessPid(pid=12, start_time=34)
    files.remove_pid("laptop")
    files.remove_pid("laptop")  # already gone: fine
    assert files.read_pid("laptop") is None
