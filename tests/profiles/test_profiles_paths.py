"""Path resolution, profile selection and child environments (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from openclaw_multi.errors import UsageError
from openclaw_multi.profiles.paths import (
    ProfilePaths,
    env_for_profile,
    resolve_paths,
    select_profile,
)

HOME = {"HOME": "/home/u"}


def test_default_profile_paths() -> None:
    p = resolve_paths(None, HOME, explicit=False)
    assert p == ProfilePaths(
        name=None,
        home=Path("/home/u"),
        state_dir=Path("/home/u/.openclaw"),
        config_path=Path("/home/u/.openclaw/openclaw.json"),
    )
    assert p.lock_path == Path("/home/u/.openclaw/gateway.lock")
    assert p.identity_path == Path("/home/u/.openclaw/gateway.identity.json")
    assert p.log_dir == Path("/home/u/.openclaw/logs")
    assert p.log_path == Path("/home/u/.openclaw/logs/gateway.log")
    assert p.display_name == "default"


def test_named_profile_paths() -> None:
    p = resolve_paths("work", HOME, explicit=True)
    assert p.state_dir == Path("/home/u/.openclaw-work")
    assert p.config_path == Path("/home/u/.openclaw-work/openclaw.json")
    assert p.display_name == "work"


def test_openclaw_home_beats_home() -> None:
    env = {"HOME": "/home/u", "OPENCLAW_HOME": "/srv/oc"}
    assert resolve_paths("work", env, explicit=True).state_dir == Path("/srv/oc/.openclaw-work")
    env = {"HOME": "/home/u", "OPENCLAW_HOME": "~/oc"}
    assert resolve_paths(None, env, explicit=False).state_dir == Path("/home/u/oc/.openclaw")
    env = {"HOME": "/home/u", "OPENCLAW_HOME": ""}  # empty means unset
    assert resolve_paths(None, env, explicit=False).home == Path("/home/u")


def test_no_home_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        resolve_paths(None, {}, explicit=False)


OVERRIDES = {
    "HOME": "/home/u",
    "OPENCLAW_STATE_DIR": "/state/x",
    "OPENCLAW_CONFIG_PATH": "/etc/x.json5",
}


def test_env_overrides_apply_when_not_explicit() -> None:
    p = resolve_paths("work", {**OVERRIDES, "OPENCLAW_PROFILE": "work"}, explicit=False)
    assert p.state_dir == Path("/state/x")
    assert p.config_path == Path("/etc/x.json5")


def test_state_dir_override_moves_the_default_config() -> None:
    env = {"HOME": "/home/u", "OPENCLAW_STATE_DIR": "/state/x"}
    p = resolve_paths(None, env, explicit=False)
    assert p.config_path == Path("/state/x/openclaw.json")
    assert p.lock_path == Path("/state/x/gateway.lock")


@pytest.mark.parametrize(
    ("env_profile", "name", "applies"),
    [
        ("work", "work", True),  # same profile: its own overrides
        ("other", "work", False),  # inherited from another profile's gateway
        (None, "work", False),  # overrides meant for the default profile
        (None, None, True),  # --profile default, env for default
        ("default", None, True),
        ("work", None, False),
        ("bad name", "work", False),  # a junk OPENCLAW_PROFILE owns nothing
    ],
)
def test_explicit_profile_does_not_inherit_other_profiles_paths(
    env_profile: str | None, name: str | None, applies: bool
) -> None:
    env = dict(OVERRIDES)
    if env_profile is not None:
        env["OPENCLAW_PROFILE"] = env_profile
    p = resolve_paths(name, env, explicit=True)
    assert (p.state_dir == Path("/state/x")) is applies
    assert (p.config_path == Path("/etc/x.json5")) is applies
    assert p.home == Path("/home/u")


@pytest.mark.parametrize(
    ("flag", "dev", "env", "expected"),
    [
        ("work", False, {"OPENCLAW_PROFILE": "other"}, ("work", True)),
        (None, True, {"OPENCLAW_PROFILE": "other"}, ("dev", True)),
        ("default", False, {"OPENCLAW_PROFILE": "other"}, (None, True)),
        (None, False, {"OPENCLAW_PROFILE": "other"}, ("other", False)),
        (None, False, {"OPENCLAW_PROFILE": "DEFAULT"}, (None, False)),
        (None, False, {"OPENCLAW_PROFILE": ""}, (None, False)),
        (None, False, {}, (None, False)),
    ],
)
def test_select_profile(
    flag: str | None, dev: bool, env: dict[str, str], expected: tuple[str | None, bool]
) -> None:
    assert select_profile(flag, dev, env) == expected


def test_select_profile_errors() -> None:
    with pytest.raises(UsageError, match="--dev cannot be combined"):
        select_profile("work", True, {})
    with pytest.raises(UsageError, match="Invalid --profile"):
        select_profile("no way", False, {})
    with pytest.raises(UsageError, match="Invalid OPENCLAW_PROFILE"):
        select_profile(None, False, {"OPENCLAW_PROFILE": "no way"})
    # A flag wins, so a junk environment value is never looked at.
    assert select_profile("work", False, {"OPENCLAW_PROFILE": "no way"}) == ("work", True)


BASE = {
    "PATH": "/usr/bin",
    "HOME": "/home/u",
    "OPENCLAW_HOME": "/srv/oc",
    "OPENCLAW_PROFILE": "other",
    "OPENCLAW_GATEWAY_PORT": "30000",
    "OPENCLAW_STATE_DIR": "/home/u/.openclaw-other",
    "OPENCLAW_CONFIG_PATH": "/home/u/.openclaw-other/openclaw.json",
    "OPENCLAW_GATEWAY_TOKEN": "secret",
    "NOT_OPENCLAW_X": "kept",
}


def test_env_for_profile_strips_other_profiles_vars() -> None:
    env = env_for_profile("work", BASE)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "OPENCLAW_HOME": "/srv/oc",
        "OPENCLAW_PROFILE": "work",
        "NOT_OPENCLAW_X": "kept",
    }
    assert BASE["OPENCLAW_PROFILE"] == "other"  # input untouched
    # The child resolves its own profile's paths, nothing inherited.
    name, explicit = select_profile(None, False, env)
    p = resolve_paths(name, env, explicit=explicit)
    assert p.state_dir == Path("/srv/oc/.openclaw-work")


def test_env_for_default_profile_unsets_profile() -> None:
    env = env_for_profile(None, BASE)
    assert "OPENCLAW_PROFILE" not in env
    assert not [k for k in env if k.startswith("OPENCLAW_") and k != "OPENCLAW_HOME"]
