"""Service definitions by value: unit files (checked by systemd-analyze) and plists (plistlib)."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from openclaw_multi.client.services import (
    gateway_spec,
    render_launchd_plist,
    render_systemd_unit,
    supervisor_spec,
)

PYTHON = os.path.abspath(sys.executable)  # a real binary: systemd-analyze checks ExecStart


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_gateway_user_unit_by_value(tmp_path: Path) -> None:
    spec = gateway_spec("work", python=PYTHON, home=tmp_path, env={})
    assert spec.name == "openclaw-gateway-work.service"
    assert _lines(render_systemd_unit(spec)) == [
        "[Unit]",
        "Description=OpenClaw gateway (profile work)",
        "After=network.target",
        "StartLimitIntervalSec=60",
        "StartLimitBurst=5",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={PYTHON} -m openclaw_multi.gateway --profile work --quiet",
        "Environment=OPENCLAW_PROFILE=work",
        "Restart=always",
        "RestartSec=1",
        "RestartPreventExitStatus=78",
        "KillMode=control-group",
        "TimeoutStartSec=30",
        "TimeoutStopSec=15",
        "WatchdogSec=30",
        "UMask=0077",
        "NoNewPrivileges=yes",
        "[Install]",
        "WantedBy=default.target",
    ]


def test_default_profile_names_and_home(tmp_path: Path) -> None:
    spec = gateway_spec(None, python=PYTHON, home=tmp_path, env={"OPENCLAW_HOME": str(tmp_path)})
    text = render_systemd_unit(spec)
    assert spec.name == "openclaw-gateway.service"
    assert f"ExecStart={PYTHON} -m openclaw_multi.gateway --profile default --quiet" in text
    assert "Environment=OPENCLAW_PROFILE=default" in text
    assert f"Environment=OPENCLAW_HOME={tmp_path}" in text
    assert "# Remove with: openclaw profiles uninstall default" in text


def test_only_the_selector_env_goes_in(tmp_path: Path) -> None:
    env = {
        "OPENCLAW_PROFILE": "other",
        "OPENCLAW_STATE_DIR": "/elsewhere",
        "OPENCLAW_GATEWAY_PORT": "1234",
        "OPENCLAW_GATEWAY_TOKEN": "sekrit-token",
        "OPENCLAW_GATEWAY_PASSWORD": "sekrit-password",
    }
    spec = gateway_spec("work", python=PYTHON, home=tmp_path, env=env)
    text = render_systemd_unit(spec)
    env_lines = [line for line in text.splitlines() if line.startswith("Environment=")]
    assert env_lines == ["Environment=OPENCLAW_PROFILE=work"]
    assert "sekrit" not in text and "/elsewhere" not in text and "1234" not in text
    plist = plistlib.loads(render_launchd_plist(spec))
    assert plist["EnvironmentVariables"] == {"OPENCLAW_PROFILE": "work"}


def test_system_unit_runs_as_a_user_with_a_pinned_home(tmp_path: Path) -> None:
    spec = gateway_spec(
        "work", python=PYTHON, home=tmp_path, env={}, scope="system", run_as="alice"
    )
    text = render_systemd_unit(spec)
    assert "User=alice" in text
    assert f"Environment=OPENCLAW_HOME={tmp_path}" in text
    assert "WantedBy=multi-user.target" in text
    assert "After=network-online.target" in text and "Wants=network-online.target" in text
    assert "# Remove with: openclaw profiles uninstall work --system" in text


def test_supervisor_unit(tmp_path: Path) -> None:
    spec = supervisor_spec(python=PYTHON, home=tmp_path, env={})
    text = render_systemd_unit(spec)
    assert spec.name == "openclaw-supervisor.service"
    assert f"ExecStart={PYTHON} -m openclaw_multi.supervisor --foreground" in text
    assert "Type=notify" in text  # the supervisor sends READY=1 in the foreground
    assert "KillMode=process" in text  # its gateways outlive it
    assert "Restart=on-failure" in text  # `openclaw supervisor stop` (exit 0) sticks
    assert "WatchdogSec" not in text
    assert "OPENCLAW_PROFILE" not in text


def test_odd_characters_are_quoted_for_systemd(tmp_path: Path) -> None:
    home = tmp_path / "a b%c$d"
    spec = gateway_spec(
        "work", python="/opt/py 3/bin/python", home=home, env={"OPENCLAW_HOME": "x"}
    )
    text = render_systemd_unit(spec)
    assert 'ExecStart="/opt/py 3/bin/python" -m openclaw_multi.gateway' in text
    assert f'Environment="OPENCLAW_HOME={tmp_path}/a b%%c$d"' in text


def _analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze missing in CI (scripts/setup-system-packages installs it)")
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    return found


def _verify(path: Path, *, user: bool, runtime: Path) -> subprocess.CompletedProcess[str]:
    cmd = [_analyze(), *(["--user"] if user else []), "verify", str(path)]
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), SYSTEMD_LOG_LEVEL="notice")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.mark.parametrize(
    ("role", "scope"),
    [("gateway", "user"), ("gateway", "system"), ("supervisor", "user"), ("supervisor", "system")],
)
def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path, role: str, scope: str) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    home = tmp_path / "home"
    if role == "gateway":
        spec = gateway_spec(
            "work",
            python=PYTHON,
            home=home,
            env={},
            scope=scope,
            run_as="root",  # type: ignore[arg-type]
        )
    else:
        spec = supervisor_spec(python=PYTHON, home=home, env={}, scope=scope, run_as="root")  # type: ignore[arg-type]
    unit = tmp_path / spec.name
    unit.write_text(render_systemd_unit(spec))
    result = _verify(unit, user=scope == "user", runtime=runtime)
    assert result.returncode == 0, result.stderr
    # Warnings (an unknown key, a bad value) come out on stderr with exit 0: none allowed.
    assert spec.name not in result.stderr, result.stderr


def test_systemd_analyze_catches_a_broken_unit(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    spec = gateway_spec("work", python=str(tmp_path / "no-python"), home=tmp_path, env={})
    unit = tmp_path / spec.name
    unit.write_text(render_systemd_unit(spec).replace("KillMode=", "KilMode="))
    result = _verify(unit, user=False, runtime=runtime)
    assert result.returncode != 0
    assert "KilMode" in result.stderr


def test_launchd_plist(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "gateway.stderr.log"
    spec = gateway_spec("work", python=PYTHON, home=tmp_path, env={}, log_path=log, launchd=True)
    plist = plistlib.loads(render_launchd_plist(spec))
    assert plist == {
        "Label": "ai.openclaw.work",
        "ProgramArguments": [
            PYTHON,
            "-m",
            "openclaw_multi.gateway",
            "--profile",
            "work",
            "--quiet",
        ],
        "EnvironmentVariables": {"OPENCLAW_PROFILE": "work"},
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "ExitTimeOut": 15,
        "ProcessType": "Background",
        "Umask": 0o077,
        "StandardOutPath": str(log),
        "StandardErrorPath": str(log),
    }
    default = gateway_spec(None, python=PYTHON, home=tmp_path, env={}, launchd=True)
    assert default.name == "ai.openclaw.gateway"
    sup = supervisor_spec(python=PYTHON, home=tmp_path, env={"OPENCLAW_HOME": "h"}, launchd=True)
    parsed = plistlib.loads(render_launchd_plist(sup))
    assert parsed["Label"] == "ai.openclaw.multi.supervisor"
    assert parsed["ProgramArguments"][1:] == ["-m", "openclaw_multi.supervisor", "--foreground"]
    assert parsed["EnvironmentVariables"] == {"OPENCLAW_HOME": str(tmp_path)}
