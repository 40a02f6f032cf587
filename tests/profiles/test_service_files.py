"""Which service definitions belong to a profile: names, directories, and the home rule."""

from __future__ import annotations

import plistlib
from pathlib import Path

from openclaw_multi.profiles.paths import resolve_paths
from openclaw_multi.profiles.service_files import (
    find_gateway_services,
    find_supervisor_services,
    gateway_label,
    gateway_unit,
    launchd_dir,
    systemd_dir,
)


def test_names() -> None:
    assert gateway_unit(None) == "openclaw-gateway.service"
    assert gateway_unit("work") == "openclaw-gateway-work.service"
    assert gateway_label(None) == "ai.openclaw.gateway"
    assert gateway_label("work") == "ai.openclaw.work"


def test_directories() -> None:
    env = {"HOME": "/home/me"}
    assert systemd_dir(env, "user") == Path("/home/me/.config/systemd/user")
    assert systemd_dir(env, "system") == Path("/etc/systemd/system")
    assert systemd_dir({**env, "XDG_CONFIG_HOME": "/cfg"}, "user") == Path("/cfg/systemd/user")
    assert systemd_dir({**env, "XDG_CONFIG_HOME": "rel"}, "user") == Path(
        "/home/me/.config/systemd/user"
    )
    assert systemd_dir({**env, "OPENCLAW_SYSTEMD_DIR": "/t/u"}, "user") == Path("/t/u")
    assert systemd_dir({**env, "OPENCLAW_SYSTEMD_SYSTEM_DIR": "/t/s"}, "system") == Path("/t/s")
    assert launchd_dir(env) == Path("/home/me/Library/LaunchAgents")
    assert launchd_dir({**env, "OPENCLAW_LAUNCHD_DIR": "/t/l"}) == Path("/t/l")
    assert systemd_dir({}, "user") is None and launchd_dir({}) is None


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "HOME": str(tmp_path / "home"),
        "OPENCLAW_SYSTEMD_DIR": str(tmp_path / "user"),
        "OPENCLAW_SYSTEMD_SYSTEM_DIR": str(tmp_path / "system"),
        "OPENCLAW_LAUNCHD_DIR": str(tmp_path / "agents"),
    }


def test_found_in_order_and_only_for_their_home(tmp_path: Path) -> None:
    env = _env(tmp_path)
    for d in ("user", "system", "agents", "home"):
        (tmp_path / d).mkdir()
    home = tmp_path / "home"
    paths = resolve_paths("work", {"HOME": str(home)}, explicit=False)
    assert find_gateway_services(paths, env) == []
    # A user unit without OPENCLAW_HOME belongs to $HOME.
    (tmp_path / "user" / "openclaw-gateway-work.service").write_text("[Service]\n")
    # A system unit names its home; this one names another.
    (tmp_path / "system" / "openclaw-gateway-work.service").write_text(
        "[Service]\nEnvironment=OPENCLAW_HOME=/somewhere/else\n"
    )
    (tmp_path / "agents" / "ai.openclaw.work.plist").write_bytes(
        plistlib.dumps({"Label": "ai.openclaw.work", "EnvironmentVariables": {}})
    )
    found = find_gateway_services(paths, env)
    assert [(d.kind, d.scope, d.name) for d in found] == [
        ("systemd", "user", "openclaw-gateway-work.service"),
        ("launchd", "user", "ai.openclaw.work"),
    ]
    (tmp_path / "system" / "openclaw-gateway-work.service").write_text(
        f'[Service]\nEnvironment="OPENCLAW_HOME={home}"\n'
    )
    assert [d.scope for d in find_gateway_services(paths, env)] == ["user", "system", "user"]
    # Another home (OPENCLAW_HOME=/tmp/x in tests) does not claim $HOME's unit.
    other = resolve_paths("work", {"HOME": str(tmp_path / "other")}, explicit=False)
    assert find_gateway_services(other, env) == []


def test_supervisor_definitions(tmp_path: Path) -> None:
    env = _env(tmp_path)
    (tmp_path / "user").mkdir()
    home = tmp_path / "home"
    assert find_supervisor_services(home, env) == []
    (tmp_path / "user" / "openclaw-supervisor.service").write_text(
        f"[Service]\nEnvironment=OPENCLAW_HOME={home}\n"
    )
    assert [d.name for d in find_supervisor_services(home, env)] == ["openclaw-supervisor.service"]
