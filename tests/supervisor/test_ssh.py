"""The pure side of SSH tunnels: names, destinations, the ssh command line, its errors,
and the definitions file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from openclaw_multi.errors import UsageError
from openclaw_multi.supervisor.ssh import (
    LOG_MARKER,
    SshDestination,
    channel_open_failure,
    classify_ssh_log,
    forward_spec,
    parse_destination,
    parse_port_number,
    parse_tunnel_name,
    ssh_argv,
)
from openclaw_multi.supervisor.tunnel_defs import (
    SshPid,
    TunnelDefinition,
    TunnelFiles,
    load_tunnels,
    save_tunnels,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("me@host.example", SshDestination("host.example", "me")),
        ("me@host.example:2222", SshDestination("host.example", "me", 2222)),
        ("host", SshDestination("host")),
        ("10.0.0.5:22", SshDestination("10.0.0.5", None, 22)),
        ("me@[::1]:2222", SshDestination("::1", "me", 2222)),
        ("[fe80::1%eth0]", SshDestination("fe80::1%eth0")),
        ("a.b-c_d@x_y.z", SshDestination("x_y.z", "a.b-c_d")),
    ],
)
def test_parse_destination(raw: str, expected: SshDestination) -> None:
    assert parse_destination(raw) == expected
    assert parse_destination(str(expected)) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "-oProxyCommand=touch /tmp/x",
        "me@-host",
        "-me@host",
        "me@host:0",
        "me@host:65536",
        "me@host:22x",
        "me@ho st",
        "me@host;rm",
        "me@[::1",
        "me@[::1]x",
        "me@[host]",
        "@host",
        "me@",
    ],
)
def test_bad_destinations_are_usage_errors(raw: str) -> None:
    with pytest.raises(UsageError):
        parse_destination(raw)


def test_names_and_ports() -> None:
    assert parse_tunnel_name("office-2_b") == "office-2_b"
    for bad in ("", "-x", "_x", "a b", "a/b", "x" * 65, "a.b"):
        with pytest.raises(UsageError):
            parse_tunnel_name(bad)
    assert parse_port_number("22", "p") == 22
    assert parse_port_number(65535, "p") == 65535
    for bad_port in ("0", "-1", "65536", "x", "1.5", ""):
        with pytest.raises(UsageError):
            parse_port_number(bad_port, "p")


def test_argv_forwards_loopback_to_loopback_and_never_prompts() -> None:
    argv = ssh_argv(
        parse_destination("me@host:2222"),
        local_port=41022,
        remote_port=18789,
        known_hosts="/s/tunnels/o.known_hosts",
        strict_host_keys=False,
        identity="/k/id",
    )
    assert argv[:4] == ["ssh", "-N", "-T", "-n"]
    options = {argv[i + 1] for i, a in enumerate(argv) if a == "-o"}
    assert {
        "BatchMode=yes",
        "ExitOnForwardFailure=yes",
        "ServerAliveInterval=10",
        "ServerAliveCountMax=3",
        "StrictHostKeyChecking=accept-new",
        "UserKnownHostsFile=/s/tunnels/o.known_hosts",
        "GlobalKnownHostsFile=/dev/null",
        "IdentitiesOnly=yes",
        "ControlMaster=no",
        "ControlPath=none",
        "PermitLocalCommand=no",
    } <= options
    assert argv[argv.index("-i") + 1] == "/k/id"
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-L") + 1] == "127.0.0.1:41022:127.0.0.1:18789"
    assert argv[-2:] == ["--", "me@host"]  # nothing after "--" is read as an option


def test_argv_with_the_persons_known_hosts_is_strict() -> None:
    argv = ssh_argv(
        parse_destination("h"),
        local_port=1,
        remote_port=2,
        known_hosts="/home/me/.ssh/known_hosts",
        strict_host_keys=True,
    )
    assert "StrictHostKeyChecking=yes" in argv
    assert "-i" not in argv and "-p" not in argv and "IdentitiesOnly=yes" not in argv
    assert forward_spec(1, 2) in argv


@pytest.mark.parametrize(
    ("log", "final", "words"),
    [
        ("me@127.0.0.1: Permission denied (publickey).\n", True, "refused the key"),
        (
            "@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
            "Host key verification failed.\n",
            True,
            "host key",
        ),
        (
            "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested "
            "strict checking.\nHost key verification failed.\n",
            True,
            "host key",
        ),
        (
            "bind [127.0.0.1]:41022: Address already in use\n"
            "channel_setup_fwd_listener_tcpip: cannot listen to port: 41022\n"
            "Could not request local forwarding.\n",
            True,
            "local port",
        ),
        ("ssh: connect to host h port 22: Connection refused\n", False, "Connection refused"),
        ("Connection to 127.0.0.1 closed by remote host.\n", False, "closed by remote host"),
        ("ssh: Could not resolve hostname nope: Name or service not known\n", False, "resolve"),
    ],
)
def test_classify_ssh_log(log: str, final: bool, words: str) -> None:
    text = f"{LOG_MARKER}2026-01-01 starting: ssh ...\nWarning: Permanently added 'h'.\n{log}"
    failure = classify_ssh_log(text)
    assert failure is not None
    assert failure.final is final
    assert words in failure.message
    assert "\n" not in failure.message


def test_classify_ignores_our_own_lines_and_noise() -> None:
    assert classify_ssh_log("") is None
    assert classify_ssh_log(f"{LOG_MARKER}starting: ssh\nWarning: Permanently added x\n") is None


def test_channel_open_failure() -> None:
    log = "channel 2: open failed: connect failed: Connection refused\n"
    assert channel_open_failure(log) == log.strip()
    assert channel_open_failure("Connection closed\n") is None
    failure = classify_ssh_log(log)
    assert failure is not None and not failure.final  # the gateway may come back


# --- the definitions file ---------------------------------------------------------------


def _definition(**kw: object) -> TunnelDefinition:
    fields: dict[str, object] = {"ssh": "me@h:2222", "remote_port": 18789, "local_port": 41022}
    fields.update(kw)
    return TunnelDefinition(**fields)  # type: ignore[arg-type]


def test_definitions_round_trip_atomic_0600(tmp_path: Path) -> None:
    files = TunnelFiles(tmp_path)
    tunnels = {"office": _definition(desired=True, identity="/k"), "lab": _definition(ssh="h")}
    save_tunnels(files.definitions_path, tunnels)
    assert stat.S_IMODE(files.definitions_path.stat().st_mode) == 0o600
    assert load_tunnels(files.definitions_path) == tunnels
    wire = json.loads(files.definitions_path.read_text())
    assert wire["version"] == 1
    assert wire["tunnels"]["office"] == {
        "ssh": "me@h:2222",
        "remotePort": 18789,
        "localPort": 41022,
        "identity": "/k",
        "knownHosts": None,
        "desired": True,
    }


def test_missing_empty_corrupt_and_invalid_definitions(tmp_path: Path) -> None:
    path = TunnelFiles(tmp_path).definitions_path
    assert load_tunnels(path) == {}
    path.write_text("  \n")
    assert load_tunnels(path) == {}
    path.write_text("{not json")
    assert load_tunnels(path) == {}
    # A person's definitions are moved aside, never overwritten by the next save.
    assert path.with_name("tunnels.json.corrupt").read_text() == "{not json"
    assert not path.exists()
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "tunnels": {
                    "good": {"ssh": "h", "remotePort": 1, "localPort": 2},
                    "bad name": {"ssh": "h", "remotePort": 1, "localPort": 2},
                    "badssh": {"ssh": "-oX=y", "remotePort": 1, "localPort": 2},
                    "badport": {"ssh": "h", "remotePort": 0, "localPort": 2},
                },
            }
        )
    )
    assert list(load_tunnels(path)) == ["good"]


def test_pid_file(tmp_path: Path) -> None:
    files = TunnelFiles(tmp_path)
    files.ensure_dir()
    assert stat.S_IMODE(files.tunnels_dir.stat().st_mode) == 0o700
    assert files.read_pid("office") is None
    files.write_pid("office", SshPid(pid=12, start_time=34))
    assert files.read_pid("office") == SshPid(pid=12, start_time=34)
    assert json.loads(files.pid_path("office").read_text()) == {"pid": 12, "startTime": 34}
    files.remove_pid("office")
    files.remove_pid("office")
    assert files.read_pid("office") is None
