"""Profile name rules (pure)."""

from __future__ import annotations

import pytest

from openclaw_multi.errors import UsageError
from openclaw_multi.profiles.names import display_name, parse_profile_name

INVALID = 'Invalid --profile (use letters, numbers, "_", "-" only)'


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("work", "work"),
        ("Work", "Work"),  # case kept
        ("a", "a"),
        ("7", "7"),
        ("my_profile-2", "my_profile-2"),
        ("a" * 64, "a" * 64),
        ("default", None),
        ("DEFAULT", None),
        ("Default", None),
        ("dev", "dev"),
        (None, None),
    ],
)
def test_valid_names(raw: str | None, expected: str | None) -> None:
    assert parse_profile_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "a" * 65, "_work", "-work", "wo rk", "wo.rk", "wo/rk", "../x", "wörk", "work\n", " work"],
)
def test_invalid_names(raw: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_profile_name(raw)
    assert str(err.value) == INVALID


def test_dev_flag_means_dev() -> None:
    assert parse_profile_name(None, dev=True) == "dev"


@pytest.mark.parametrize("raw", ["work", "dev", "default", ""])
def test_dev_with_profile_is_an_error(raw: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_profile_name(raw, dev=True)
    assert str(err.value) == "--dev cannot be combined with --profile"


def test_display_name() -> None:
    assert display_name(None) == "default"
    assert display_name("work") == "work"
