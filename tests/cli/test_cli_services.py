"""``openclaw profiles|supervisor install|uninstall``, the one-owner rule, completion, colour.

Real CLI processes in a fresh home. systemd itself is not running here, so ``systemctl`` is
a recording stand-in (``OPENCLAW_SYSTEMCTL``): it answers ``show-environment`` when asked to
be usable and logs every other call; unit files are checked with ``systemd-analyze``.
"""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from conftest import clean_env, free_port, start_gateway, wait_until

from openclaw_multi.profiles.lock import identity_matches_process, read_identity
from openclaw_multi.profiles.ports import PORT_BLOCK

CLI = [sys.executable, "-m", "openclaw_multi.cli.main"]
UNIT = "openclaw-gateway-work.service"


@dataclass
class ServiceHost:
    """A home, service directories under the test's tmp dir, and a recording systemctl."""

    root: Path
    usable: bool = False
    ports: list[int] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def units(self) -> Path:
        return self.root / "units"

    @property
    def system_units(self) -> Path:
        return self.root / "system-units"

    @property
    def agents(self) -> Path:
        return self.root / "agents"

    @property
    def calls_log(self) -> Path:
        return self.root / "systemctl.log"

    def fake_systemctl(self) -> Path:
        path = self.root / "systemctl"
        answer = 0 if self.usable else 1
        path.write_text(
            "#!/bin/sh\n"
            f'if [ "$*" = "--user show-environment" ] || [ "$*" = "show-environment" ]; then '
            f"exit {answer}; fi\n"
            f'echo "$*" >> "{self.calls_log}"\n'
        )
        path.chmod(0o755)
        return path

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(
            self.home,
            OPENCLAW_SYSTEMD_DIR=str(self.units),
            OPENCLAW_SYSTEMD_SYSTEM_DIR=str(self.system_units),
            OPENCLAW_LAUNCHD_DIR=str(self.agents),
            OPENCLAW_SYSTEMCTL=str(self.fake_systemctl()),
            OPENCLAW_LAUNCHCTL="",
            **extra,
        )

    def run(
        self, *args: str, timeout: float = 60.0, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], env=self.env(**extra), capture_output=True, text=True, timeout=timeout
        )

    def calls(self) -> list[str]:
        try:
            return self.calls_log.read_text().splitlines()
        except FileNotFoundError:
            return []

    def create(self, name: str) -> int:
        for _ in range(100):
            port = free_port()
            if all(abs(port - p) >= PORT_BLOCK for p in self.ports):
                break
        self.ports.append(port)
        result = self.run("profiles", "create", name, "--port", str(port))
        assert result.returncode == 0, result.stderr
        return port


@pytest.fixture
def sh() -> Iterator[ServiceHost]:
    # A short root: the supervisor's control socket path is limited to 107 bytes.
    host = ServiceHost(Path(tempfile.mkdtemp(prefix="ocsv-")))
    host.home.mkdir()
    yield host
    host.run("supervisor", "stop", "--all", timeout=90)
    for pid in host.pids:
        try:
            if "openclaw" in " ".join(psutil.Process(pid).cmdline()):
                os.kill(pid, signal.SIGKILL)
        except psutil.Error:
            pass
    shutil.rmtree(host.root, ignore_errors=True)


def test_install_writes_a_verified_unit_and_hands_over(sh: ServiceHost) -> None:
    sh.usable = True
    sh.create("work")
    result = sh.run("profiles", "install", "work")
    assert result.returncode == 0, result.stderr
    unit = sh.units / UNIT
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    text = unit.read_text()
    assert f"ExecStart={os.path.abspath(sys.executable)} -m openclaw_multi.gateway" in text
    assert "Environment=OPENCLAW_HOME" not in text  # not set in this environment
    assert "Environment=OPENCLAW_PROFILE=work" in text
    assert sh.calls() == ["--user daemon-reload", f"--user enable --now {UNIT}"]
    assert f"ran: systemctl --user enable --now {UNIT}" in result.stdout
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:
        (sh.root / "run").mkdir(mode=0o700)
        check = subprocess.run(
            [analyze, "--user", "verify", str(unit)],
            env=dict(os.environ, XDG_RUNTIME_DIR=str(sh.root / "run")),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0 and UNIT not in check.stderr, check.stderr
    # Again: the same definition is rewritten, not duplicated.
    again = sh.run("profiles", "install", "work", "--no-start")
    assert again.returncode == 0, again.stderr
    assert f"updated {unit}" in again.stdout
    assert f"start it with: systemctl --user enable --now {UNIT}" in again.stdout


def test_dry_run_writes_nothing(sh: ServiceHost) -> None:
    sh.create("work")
    result = sh.run("profiles", "install", "work", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"would write {sh.units / UNIT} (mode 0644):" in result.stdout
    assert "Type=notify" in result.stdout and "WatchdogSec=30" in result.stdout
    assert not sh.units.exists()
    assert sh.calls() == []


def test_install_with_openclaw_home_pins_it(sh: ServiceHost) -> None:
    sh.create("work")
    result = sh.run("profiles", "install", "work", "--no-start", OPENCLAW_HOME=str(sh.home))
    assert result.returncode == 0, result.stderr
    assert f"Environment=OPENCLAW_HOME={sh.home}" in (sh.units / UNIT).read_text()


def test_system_unit_and_launchd_plist(sh: ServiceHost) -> None:
    sh.create("work")
    result = sh.run("profiles", "install", "work", "--system", "--no-start")
    assert result.returncode == 0, result.stderr
    text = (sh.system_units / UNIT).read_text()
    assert f"Environment=OPENCLAW_HOME={sh.home}" in text and "User=" in text
    # One owner per profile: a second kind of definition is refused (exit 78).
    refused = sh.run("profiles", "install", "work", "--launchd")
    assert refused.returncode == 78
    assert "uninstall work --system" in refused.stderr
    gone = sh.run("profiles", "uninstall", "work", "--system")
    assert gone.returncode == 0, gone.stderr
    assert not (sh.system_units / UNIT).exists()
    result = sh.run("profiles", "install", "work", "--launchd")
    assert result.returncode == 0, result.stderr
    plist_path = sh.agents / "ai.openclaw.work.plist"
    plist = plistlib.loads(plist_path.read_bytes())
    assert plist["Label"] == "ai.openclaw.work"
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["ProgramArguments"][-4:] == [
        "openclaw_multi.gateway",
        "--profile",
        "work",
        "--quiet",
    ]
    assert plist["StandardErrorPath"] == str(sh.home / ".openclaw-work/logs/gateway.stderr.log")
    assert "launchctl cannot be used here" in result.stdout
    assert "launchctl bootstrap gui/" in result.stdout
    row = _row(sh, "work")
    assert row["owner"] == "launchd"
    assert sh.run("profiles", "uninstall", "work").returncode == 0
    assert not plist_path.exists()


def test_uninstall_removes_unit_and_enable_links(sh: ServiceHost) -> None:
    sh.create("work")
    assert sh.run("profiles", "install", "work", "--no-start").returncode == 0
    wants = sh.units / "default.target.wants"
    wants.mkdir()
    (wants / UNIT).symlink_to(sh.units / UNIT)
    result = sh.run("profiles", "uninstall", "work")
    assert result.returncode == 0, result.stderr
    assert not (sh.units / UNIT).exists() and not (wants / UNIT).is_symlink()
    assert (
        "systemctl --user stop openclaw-gateway-work.service && systemctl --user daemon-reload"
        in result.stdout
    )
    assert (
        sh.run("profiles", "uninstall", "work").stdout.strip()
        == "profile work: no service installed"
    )


def test_uninstall_asks_systemd_when_it_answers(sh: ServiceHost) -> None:
    sh.usable = True
    sh.create("work")
    assert sh.run("profiles", "install", "work", "--no-start").returncode == 0
    result = sh.run("profiles", "uninstall", "work")
    assert result.returncode == 0, result.stderr
    assert sh.calls()[-2:] == [f"--user disable --now {UNIT}", "--user daemon-reload"]


def _row(sh: ServiceHost, name: str) -> dict[str, object]:
    result = sh.run("profiles", "list", "--json")
    assert result.returncode in (0, 1), result.stderr
    return next(r for r in json.loads(result.stdout) if r["name"] == name)


def test_start_of_a_systemd_profile_goes_through_systemctl(sh: ServiceHost) -> None:
    sh.create("work")
    assert sh.run("profiles", "install", "work", "--no-start").returncode == 0
    assert _row(sh, "work")["owner"] == "systemd"
    # systemctl present but no user manager: refused, with exactly what to run.
    refused = sh.run("profiles", "start", "work")
    assert refused.returncode == 1
    assert f"run: systemctl --user start {UNIT}" in refused.stderr
    assert not (sh.home / ".openclaw-supervisor" / "supervisor.sock").exists()
    sh.usable = True
    for op in ("start", "restart", "stop"):
        result = sh.run("profiles", op, "work")
        assert result.returncode == 0, result.stderr
        assert "via systemd" in result.stdout
    assert sh.calls()[-3:] == [
        f"--user start {UNIT}",
        f"--user restart {UNIT}",
        f"--user stop {UNIT}",
    ]
    # The supervisor was never asked (nor started) for a systemd-owned profile.
    assert not (sh.home / ".openclaw-supervisor" / "supervisor.sock").exists()


def test_supervisor_never_adopts_a_service_owned_gateway(sh: ServiceHost) -> None:
    port = sh.create("work")
    sh.create("other")
    assert sh.run("profiles", "install", "work", "--no-start").returncode == 0
    # systemd's stand-in: a gateway started outside the supervisor (as the unit would).
    gw = start_gateway(
        sh.home, "work", port=port, env_extra={"OPENCLAW_SYSTEMD_DIR": str(sh.units)}
    )
    sh.pids.append(gw.pid)
    try:
        started = sh.run("profiles", "start", "other")
        assert started.returncode == 0, started.stderr
        status = json.loads(sh.run("supervisor", "status", "--json").stdout)
        work = next(p for p in status["profiles"] if p["name"] == "work")
        assert work["pid"] is None and work["desired"] is False
        row = _row(sh, "work")
        assert row["owner"] == "systemd" and row["pid"] == gw.pid
        assert _row(sh, "other")["owner"] == "supervisor"
    finally:
        gw.stop()


def test_install_takes_the_profile_from_the_supervisor(sh: ServiceHost) -> None:
    sh.create("work")
    started = sh.run("profiles", "start", "work")
    assert started.returncode == 0, started.stderr
    identity = read_identity(sh.home / ".openclaw-work" / "gateway.identity.json")
    assert identity is not None
    sh.pids.append(identity.pid)
    result = sh.run("profiles", "install", "work", "--no-start")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: not identity_matches_process(identity), what="supervisor's gateway gone")
    status = json.loads(sh.run("supervisor", "status", "--json").stdout)
    work = next(p for p in status["profiles"] if p["name"] == "work")
    assert work["desired"] is False and work["pid"] is None
    assert _row(sh, "work")["owner"] == "systemd"


def test_supervisor_install_and_uninstall(sh: ServiceHost) -> None:
    sh.usable = True
    result = sh.run("supervisor", "install")
    assert result.returncode == 0, result.stderr
    unit = sh.units / "openclaw-supervisor.service"
    text = unit.read_text()
    assert "-m openclaw_multi.supervisor --foreground" in text and "KillMode=process" in text
    assert sh.calls() == ["--user daemon-reload", "--user enable --now openclaw-supervisor.service"]
    assert sh.run("supervisor", "uninstall").returncode == 0
    assert not unit.exists()


def test_supervisor_sends_ready_in_the_foreground(sh: ServiceHost) -> None:
    import tempfile

    from conftest import NotifyListener

    path = Path(tempfile.mkdtemp(prefix="ocs-")) / "n.sock"
    listener = NotifyListener(path)
    env = sh.env(NOTIFY_SOCKET=str(path))
    output = sh.root / "supervisor.out"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "openclaw_multi.supervisor", "--foreground"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            listener.wait_for("READY=1", timeout=30.0, proc=proc)
        except AssertionError as err:
            raise AssertionError(f"{err}; supervisor said: {output.read_text()!r}") from None
        # Ready means the control socket answers.
        status = sh.run("supervisor", "status")
        assert status.returncode == 0, status.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        listener.close()


def test_list_table_has_an_owner_column(sh: ServiceHost) -> None:
    sh.create("work")
    result = sh.run("profiles", "list")
    header = result.stdout.splitlines()[0].split()
    assert header[:4] == ["NAME", "STATE", "HEALTH", "OWNER"]
    assert result.stdout.splitlines()[1].split()[3] == "none"
    assert "\x1b[" not in result.stdout  # not a terminal: no colour


# --- completion -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F"),
        ("zsh", "#compdef openclaw"),
        ("fish", "complete --no-files --command openclaw"),
    ],
)
def test_completion_scripts(sh: ServiceHost, shell: str, marker: str) -> None:
    result = sh.run("completion", shell)
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout
    assert "_OPENCLAW_COMPLETE" in result.stdout


def test_completion_of_profile_names(sh: ServiceHost) -> None:
    sh.create("work")
    sh.create("weekend")
    sh.create("home")

    def complete(words: str, cword: int) -> list[str]:
        result = sh.run(_OPENCLAW_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(cword))
        assert result.returncode == 0, result.stderr
        return [line.split(",", 1)[1] for line in result.stdout.splitlines()]

    assert complete("openclaw profiles start w", 3) == ["weekend", "work"]
    assert complete("openclaw profiles show ", 3) == ["home", "weekend", "work"]
    assert complete("openclaw --profile h", 2) == ["home"]
    assert complete("openclaw gateway status --profile we", 4) == ["weekend"]
    assert complete("openclaw profiles install wo", 3) == ["work"]


def test_bad_completion_shell_is_usage(sh: ServiceHost) -> None:
    assert sh.run("completion", "tcsh").returncode == 2


def test_version(sh: ServiceHost) -> None:
    result = sh.run("--version")
    assert result.returncode == 0 and result.stdout.startswith("openclaw-multi, version ")


def test_rm_refuses_a_profile_installed_as_a_service(sh: ServiceHost) -> None:
    sh.create("work")
    assert sh.run("profiles", "install", "work", "--no-start").returncode == 0
    refused = sh.run("profiles", "rm", "work")
    assert refused.returncode == 1
    assert "remove it first: openclaw profiles uninstall work" in refused.stderr
    assert sh.run("profiles", "uninstall", "work").returncode == 0
    assert sh.run("profiles", "rm", "work").returncode == 0
