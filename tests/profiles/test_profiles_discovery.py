"""Listing the profiles under a home directory."""

from __future__ import annotations

from pathlib import Path

from openclaw_multi.profiles.discovery import list_profiles


def test_lists_valid_profile_dirs_sorted(tmp_path: Path) -> None:
    for name in [
        ".openclaw",
        ".openclaw-work",
        ".openclaw-Alpha",
        ".openclaw-rescue",
        ".openclaw-supervisor",  # the supervisor's, not a profile
        ".openclaw-bad name",
        ".openclaw-_x",
        ".openclaw-default",  # not where the default profile lives
        ".openclaw-",
        ".config",
    ]:
        (tmp_path / name).mkdir()
    (tmp_path / ".openclaw-file").write_text("not a dir")
    found = list_profiles(tmp_path)
    assert [p.display_name for p in found] == ["Alpha", "default", "rescue", "work"]
    work = found[-1]
    assert work.name == "work"
    assert work.state_dir == tmp_path / ".openclaw-work"
    assert work.config_path == tmp_path / ".openclaw-work" / "openclaw.json"
    assert found[1].name is None and found[1].state_dir == tmp_path / ".openclaw"


def test_missing_home_lists_nothing(tmp_path: Path) -> None:
    assert list_profiles(tmp_path / "missing") == []
