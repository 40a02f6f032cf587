"""``client/doctor.py``'s rules with hand-made facts: no processes, no files."""

from __future__ import annotations

from pathlib import Path

from openclaw_multi.client.doctor import (
    Finding,
    HostFacts,
    ProfileFacts,
    SupervisorFacts,
    apply_fix,
    diagnose,
)
from openclaw_multi.profiles.lock import Identity
from openclaw_multi.profiles.paths import resolve_paths
from openclaw_multi.profiles.service_files import ServiceDefinition
from openclaw_multi.protocol.control import ProfileStatus

HOME = Path("/h")


def _profile(name: str, **kw: object) -> ProfileFacts:
    paths = resolve_paths(name, {"HOME": str(HOME)}, explicit=False)
    facts = ProfileFacts(paths=paths, state_mode=0o700, state_uid=1000, config_mode=0o600)
    for key, value in kw.items():
        setattr(facts, key, value)
    return facts


def _identity(pid: int = 4242, port: int = 41984) -> Identity:
    return Identity(
        pid=pid,
        start_time=1,
        port=port,
        host="127.0.0.1",
        config_path="/h/.openclaw-work/openclaw.json",
        state_dir="/h/.openclaw-work",
        created_at=0.0,
        version="0",
    )


def _codes(*profiles: ProfileFacts, sup: SupervisorFacts | None = None) -> list[str]:
    facts = HostFacts(uid=1000, profiles=list(profiles), supervisor=sup or SupervisorFacts(True))
    return [f.code for f in diagnose(facts)]


def _unit(name: str = "work") -> ServiceDefinition:
    return ServiceDefinition(
        "systemd",
        "user",
        f"openclaw-gateway-{name}.service",
        Path(f"/u/openclaw-gateway-{name}.service"),
    )


def test_a_healthy_home_has_no_findings() -> None:
    live = _profile("work", identity=_identity(), identity_bytes=b"{}", identity_live=True)
    sup = SupervisorFacts(True, desired={"work": True})
    assert _codes(live, _profile("other", port=50000), sup=sup) == []


def test_stale_and_unowned_identities() -> None:
    stale = _profile("work", identity=_identity(), identity_bytes=b"x", identity_live=False)
    corrupt = _profile("other", identity_bytes=b"{", identity=None)
    assert _codes(stale, corrupt) == ["stale-identity", "stale-identity"]
    live = _profile("work", identity=_identity(), identity_bytes=b"x", identity_live=True)
    assert _codes(live) == ["unowned-gateway"]
    held = SupervisorFacts(
        True, statuses=[ProfileStatus(name="work", state="RUNNING", desired=False, pid=4242)]
    )
    assert _codes(live, sup=held) == []
    assert (
        _codes(
            _profile(
                "work",
                identity=_identity(),
                identity_bytes=b"x",
                identity_live=True,
                services=[_unit()],
            )
        )
        == []
    )


def test_ports() -> None:
    a = _profile("a", port=40000, port_source="config")
    b = _profile("b", port=40019, port_source="config")
    c = _profile("c", port=40039, port_source="config")
    assert _codes(a, b, c) == ["port-overlap"]
    taken = _profile("d", port=45000, port_holder=(99, "nc -l 45000"))
    assert _codes(taken) == ["port-taken"]
    # Held by a gateway of this home: that is the overlap rule's business, not a foreign one.
    gw = _profile(
        "e",
        port=45050,
        identity=_identity(pid=77, port=45050),
        identity_bytes=b"x",
        identity_live=True,
    )
    mine = _profile("f", port=45100, port_holder=(77, "python -m openclaw_multi.gateway"))
    assert "port-taken" not in _codes(gw, mine)


def test_duplicates_modes_config_and_owner() -> None:
    plist = ServiceDefinition(
        "launchd", "user", "ai.openclaw.work", Path("/a/ai.openclaw.work.plist")
    )
    assert _codes(_profile("work", services=[_unit(), plist])) == ["duplicate-owner"]
    sup = SupervisorFacts(True, desired={"work": True})
    assert _codes(_profile("work", services=[_unit()]), sup=sup) == ["duplicate-owner"]
    assert _codes(_profile("work", config_error="/h/x.json:3:7: bad")) == ["config-invalid"]
    loose = _profile("work", config_has_secrets=True, config_mode=0o644, state_mode=0o755)
    assert _codes(loose) == ["secret-readable", "state-dir-open"]
    assert _codes(_profile("work", config_has_secrets=False, config_mode=0o644)) == []
    keys = _profile("work", key_files=[(Path("/h/.openclaw-work/identity/device.json"), 0o640)])
    assert _codes(keys) == ["secret-readable"]
    foreign = _profile("work", state_uid=0, config_has_secrets=True, config_mode=0o644)
    assert _codes(foreign) == ["state-dir-foreign-owner"]


def test_supervisor_side() -> None:
    down = SupervisorFacts(
        False,
        desired={"work": True, "idle": False},
        identity_path=Path("/h/.openclaw-supervisor/supervisor.json"),
        identity_stale=True,
        sockets=[Path("/h/.openclaw-supervisor/supervisor.sock")],
    )
    found = diagnose(HostFacts(uid=1000, profiles=[_profile("work")], supervisor=down))
    assert [(f.severity, f.code) for f in found] == [
        ("error", "supervisor-down"),
        ("warning", "leftover-socket"),
        ("warning", "stale-identity"),
    ]
    assert all(f.fixable for f in found)
    assert "work" in found[0].what and "idle" not in found[0].what
    # Owned by systemd: the supervisor being down is not that profile's problem.
    assert _codes(
        _profile("work", services=[_unit()]), sup=SupervisorFacts(False, desired={"work": True})
    ) == ["duplicate-owner"]
    # The supervisor is itself a service: the fix names its manager, --fix leaves it.
    managed = SupervisorFacts(
        False,
        desired={"work": True},
        services=[_unit("x")],
        manager_hint="start its service: systemctl --user start openclaw-supervisor.service",
    )
    (finding,) = diagnose(HostFacts(uid=1000, profiles=[_profile("work")], supervisor=managed))
    assert not finding.fixable and "systemctl --user start" in finding.fix


def test_linger_is_info() -> None:
    facts = HostFacts(
        uid=1000,
        profiles=[_profile("work", services=[_unit()])],
        supervisor=SupervisorFacts(True),
        linger=False,
    )
    assert [(f.severity, f.code) for f in diagnose(facts)] == [("info", "linger-off")]


def test_fixes(tmp_path: Path) -> None:
    secret = tmp_path / "openclaw.json"
    secret.write_text("{}")
    secret.chmod(0o644)
    finding = Finding("error", "secret-readable", "w", "y", "f", action=None)
    apply_fix(finding, lambda: None)
    assert not finding.fixed
    from openclaw_multi.client.doctor import FixAction

    finding.action = FixAction("chmod", secret, mode=0o600)
    apply_fix(finding, lambda: None)
    assert finding.fixed and finding.done == f"chmod 600 {secret}"
    assert secret.stat().st_mode & 0o777 == 0o600
    # An identity file that changed since it was judged stale is left alone.
    ident = tmp_path / "gateway.identity.json"
    ident.write_bytes(b"new")
    changed = Finding(
        "warning",
        "stale-identity",
        "w",
        "y",
        "f",
        action=FixAction("remove-identity", ident, expect=b"old"),
    )
    apply_fix(changed, lambda: None)
    assert not changed.fixed and ident.exists() and "changed" in (changed.done or "")
    # A path that is no longer a socket is not removed.
    plain = tmp_path / "supervisor.sock"
    plain.write_text("")
    sock = Finding(
        "warning", "leftover-socket", "w", "y", "f", action=FixAction("remove-socket", plain)
    )
    apply_fix(sock, lambda: None)
    assert not sock.fixed and plain.exists()
    started: list[bool] = []
    sup = Finding("error", "supervisor-down", "w", "y", "f", action=FixAction("start-supervisor"))
    apply_fix(sup, lambda: started.append(True))
    assert sup.fixed and started == [True]
    assert sup.to_json()["fixed"] is True and set(sup.to_json()) == {
        "severity",
        "code",
        "profile",
        "what",
        "why",
        "fix",
        "path",
        "fixable",
        "fixed",
        "done",
    }
