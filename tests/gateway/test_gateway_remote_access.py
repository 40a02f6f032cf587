"""Remote access against real gateway processes: TLS + pinning, bind rules, trusted proxies.

Loopback only. A TLS gateway generates its certificate into ``<state>/tls/``; the tests
compute its fingerprint from that file themselves (not from the gateway's own report).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import ssl
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import GatewayProcess, clean_env, free_port, wait_until
from openclaw_cli import openclaw
from websockets.sync.client import connect
from wire import connect_params

from openclaw_multi.client.gateway import GatewayClient
from openclaw_multi.client.http_probe import probe_http
from openclaw_multi.errors import GatewayCallFailed, GatewayTlsError
from openclaw_multi.profiles.lock import read_identity
from openclaw_multi.protocol.tls import format_fingerprint
from openclaw_multi.supervisor.probe import probe_readyz

pytestmark = pytest.mark.e2e
TOKEN = "tls-" + uuid.uuid4().hex


def write_config(home: Path, profile: str, config: dict[str, Any]) -> Path:
    state = home / f".openclaw-{profile}"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state / "openclaw.json"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def cert_fingerprint(state_dir: Path) -> str:
    pem = (state_dir / "tls" / "gateway-cert.pem").read_text()
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


@pytest.fixture
def tls_gateway(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    write_config(
        home,
        "sec",
        {"gateway": {"tls": {"enabled": True}, "auth": {"mode": "token", "token": TOKEN}}},
    )
    return gateway_factory("sec")


def _connect(url: str, **kwargs: Any) -> Any:
    async def main() -> Any:
        client = await GatewayClient.connect(url, timeout=5, **kwargs)
        async with client:
            return client.hello, await client.call("status")

    return asyncio.run(main())


# -- TLS ----------------------------------------------------------------------------------------
def test_generated_certificate_is_private_and_reused(
    home: Path, tls_gateway: GatewayProcess, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    tls_dir = tls_gateway.state_dir / "tls"
    assert stat.S_IMODE((tls_dir / "gateway-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(tls_dir.stat().st_mode) == 0o700
    first = cert_fingerprint(tls_gateway.state_dir)
    identity = read_identity(tls_gateway.state_dir / "gateway.identity.json")
    assert identity is not None and identity.tls_fingerprint == first
    assert tls_gateway.stop() == 0
    again = gateway_factory("sec", port=tls_gateway.port)
    assert cert_fingerprint(again.state_dir) == first  # generated once, then reused


def test_pinned_wss_works_and_status_reports_the_pin(tls_gateway: GatewayProcess) -> None:
    fp = cert_fingerprint(tls_gateway.state_dir)
    url = f"wss://127.0.0.1:{tls_gateway.port}/"
    for pin in (fp, format_fingerprint(fp), format_fingerprint(fp).lower(), fp.upper()):
        hello, status = _connect(url, token=TOKEN, tls_fingerprint=pin)
        assert hello.auth.method == "token"
        assert status["tls"] == {"enabled": True, "fingerprintSha256": fp}


def test_wrong_pin_is_refused_naming_both(tls_gateway: GatewayProcess) -> None:
    fp = cert_fingerprint(tls_gateway.state_dir)
    wrong = "ab" * 32
    with pytest.raises(GatewayTlsError) as caught:
        _connect(f"wss://127.0.0.1:{tls_gateway.port}/", token=TOKEN, tls_fingerprint=wrong)
    message = str(caught.value)
    assert message.startswith(
        f"TLS fingerprint mismatch: expected {format_fingerprint(wrong)}, "
        f"got {format_fingerprint(fp)}"
    )
    assert "\n" not in message
    # Refused inside the TLS handshake: the gateway never saw an upgrade, let alone a token.
    log = (tls_gateway.state_dir / "logs" / "gateway.log").read_text()
    assert TOKEN not in log and "auth failed" not in log


def test_unpinned_self_signed_is_refused_with_the_hint(tls_gateway: GatewayProcess) -> None:
    fp = format_fingerprint(cert_fingerprint(tls_gateway.state_dir))
    with pytest.raises(GatewayTlsError) as caught:
        _connect(f"wss://127.0.0.1:{tls_gateway.port}/", token=TOKEN)
    message = str(caught.value)
    assert "TLS certificate not trusted (self-signed certificate)" in message
    assert f"pin it with --tls-fingerprint {fp}" in message


def test_plain_ws_to_a_tls_port_fails_cleanly(tls_gateway: GatewayProcess) -> None:
    with pytest.raises(Exception) as caught:
        _connect(f"ws://127.0.0.1:{tls_gateway.port}/", token=TOKEN)
    assert "Traceback" not in str(caught.value)


def test_cli_health_over_pinned_wss(home: Path, tls_gateway: GatewayProcess) -> None:
    fp = format_fingerprint(cert_fingerprint(tls_gateway.state_dir))
    url = f"wss://127.0.0.1:{tls_gateway.port}"
    ok = openclaw(home, "health", "--url", url, "--token", TOKEN, "--tls-fingerprint", fp)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("Gateway Health\nOK (")
    wrong = openclaw(home, "health", "--url", url, "--token", TOKEN, "--tls-fingerprint", "0" * 64)
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("error: TLS fingerprint mismatch: expected 00:00:")
    assert f"got {fp}" in wrong.stderr and len(wrong.stderr.splitlines()) == 1
    unpinned = openclaw(home, "health", "--url", url, "--token", TOKEN)
    assert unpinned.returncode == 1
    assert "pin it with --tls-fingerprint" in unpinned.stderr


def test_cli_status_prints_the_fingerprint(home: Path, tls_gateway: GatewayProcess) -> None:
    write_config(
        home,
        "sec",
        {
            "gateway": {
                "port": tls_gateway.port,
                "tls": {"enabled": True},
                "auth": {"mode": "token", "token": TOKEN},
            }
        },
    )
    fp = format_fingerprint(cert_fingerprint(tls_gateway.state_dir))
    result = openclaw(home, "--profile", "sec", "gateway", "status")
    assert result.returncode == 0, result.stderr
    assert f"wss://127.0.0.1:{tls_gateway.port}/" in result.stdout
    assert re.search(rf"^tls sha256: +{fp}$", result.stdout, re.MULTILINE), result.stdout
    as_json = openclaw(home, "--profile", "sec", "gateway", "status", "--json")
    assert json.loads(as_json.stdout)["tls"]["enabled"] is True
    assert TOKEN not in result.stdout + as_json.stdout


def test_https_probes(tls_gateway: GatewayProcess) -> None:
    fp = cert_fingerprint(tls_gateway.state_dir)
    port = tls_gateway.port

    async def probes() -> tuple[Any, ...]:
        ready = await probe_http("127.0.0.1", port, "/readyz", tls_fingerprint=fp)
        live = await probe_http("127.0.0.1", port, "/healthz", tls_fingerprint=fp)
        supervised = await probe_readyz("127.0.0.1", port, 2.0, tls_fingerprint=fp)
        wrong_pin = await probe_readyz("127.0.0.1", port, 2.0, tls_fingerprint="cd" * 32)
        plain = await probe_readyz("127.0.0.1", port, 2.0)
        return ready, live, supervised, wrong_pin, plain

    ready, live, supervised, wrong_pin, plain = asyncio.run(probes())
    assert ready[0] == 200 and ready[1]["ready"] is True
    assert live == (200, {"ok": True, "status": "live"})
    assert (supervised, wrong_pin, plain) == (True, False, False)


def test_failed_auth_is_throttled_through_tls(tls_gateway: GatewayProcess) -> None:
    fp = cert_fingerprint(tls_gateway.state_dir)
    url = f"wss://127.0.0.1:{tls_gateway.port}/"
    with pytest.raises(GatewayCallFailed) as first:
        _connect(url, token="wrong-1", tls_fingerprint=fp)
    assert first.value.details == {"code": "AUTH_TOKEN_MISMATCH"}
    started = time.monotonic()
    with pytest.raises(GatewayCallFailed):
        _connect(url, token="wrong-2", tls_fingerprint=fp)
    assert time.monotonic() - started >= 0.4  # the second failure's reply is held back
    log = (tls_gateway.state_dir / "logs" / "gateway.log").read_text()
    assert "auth failed from 127.0.0.1" in log
    assert TOKEN not in log and "wrong-2" not in log


def test_half_a_pair_is_a_config_error(home: Path) -> None:
    state = write_config(home, "half", {"gateway": {"tls": {"enabled": True}}}).parent
    (state / "tls").mkdir(mode=0o700)
    (state / "tls" / "gateway-cert.pem").write_text("not a cert")
    result = _run_gateway(home, "half")
    assert result.returncode == 78
    assert "gateway-key.pem does not exist" in result.stderr


# -- bind rules -----------------------------------------------------------------------------------
def _run_gateway(home: Path, profile: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "openclaw_multi.gateway",
            "--profile",
            profile,
            "--port",
            str(free_port()),
            *args,
        ],
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    "gateway_cfg",
    [
        {"bind": "lan"},
        {"bind": "custom", "customBindHost": "0.0.0.0"},
        {"bind": "custom", "customBindHost": "::"},
        # gateway.remote.token is what this profile's CLI sends elsewhere: never local auth.
        {"bind": "lan", "remote": {"url": "wss://gw.example:443", "token": TOKEN}},
        {"bind": "custom", "customBindHost": "0.0.0.0", "auth": {"allowTailscale": True}},
    ],
)
def test_non_loopback_bind_without_auth_exits_78(home: Path, gateway_cfg: dict[str, Any]) -> None:
    write_config(home, "bind", {"gateway": gateway_cfg})
    result = _run_gateway(home, "bind")
    assert result.returncode == 78, result.stderr
    assert "refusing to bind" in result.stderr and "without auth" in result.stderr
    assert TOKEN not in result.stderr


def test_custom_loopback_bind_needs_no_auth(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    write_config(home, "lo", {"gateway": {"bind": "custom", "customBindHost": "127.0.0.1"}})
    gw = gateway_factory("lo")
    assert gw.proc.poll() is None


def test_tailnet_without_address_exits_78(home: Path) -> None:
    write_config(home, "tn", {"gateway": {"bind": "tailnet", "auth": {"token": TOKEN}}})
    result = _run_gateway(home, "tn")
    from openclaw_multi.gateway.binding import tailnet_addresses

    if tailnet_addresses():
        pytest.skip("this host has a tailnet address")
    assert result.returncode == 78
    assert "no 100.64.0.0/10 or fd7a:115c:a1e0::/48 address" in result.stderr


def test_trusted_proxy_mode_needs_trusted_proxies(home: Path) -> None:
    write_config(home, "tp", {"gateway": {"auth": {"mode": "trusted-proxy"}}})
    result = _run_gateway(home, "tp")
    assert result.returncode == 78
    assert "needs gateway.trustedProxies" in result.stderr


def test_remote_token_never_satisfies_local_auth(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    remote_token = "remote-" + uuid.uuid4().hex
    write_config(
        home,
        "rt",
        {
            "gateway": {
                "auth": {"mode": "token", "token": TOKEN},
                "remote": {"url": "wss://elsewhere.example:443", "token": remote_token},
            }
        },
    )
    gw = gateway_factory("rt")
    ws = _raw(gw.port)
    reply = _hello(ws, auth={"token": remote_token})
    assert reply["ok"] is False and reply["error"]["details"] == {"code": "AUTH_TOKEN_MISMATCH"}
    ws.close()
    # ... and a config with only a remote token does not enable auth at all.
    write_config(home, "rt2", {"gateway": {"auth": {"mode": "token"}, "remote": {"token": TOKEN}}})
    result = _run_gateway(home, "rt2")
    assert result.returncode == 78 and "no token is set" in result.stderr


# -- trusted proxies ------------------------------------------------------------------------------
def _raw(port: int, headers: dict[str, str] | None = None, source: str | None = None) -> Any:
    sock = None
    if source is not None:
        sock = socket.socket()
        sock.bind((source, 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
    ws = connect(
        f"ws://127.0.0.1:{port}/",
        sock=sock,
        additional_headers=headers or {},
        compression=None,
        proxy=None,
        open_timeout=5,
        ping_interval=None,
        legacy=True,  # a plain object, closed explicitly by each test
    )
    challenge = json.loads(ws.recv(timeout=5))
    assert challenge["event"] == "connect.challenge"
    return ws


def _hello(ws: Any, **overrides: Any) -> dict[str, Any]:
    ws.send(
        json.dumps(
            {"type": "req", "id": "c1", "method": "connect", "params": connect_params(**overrides)}
        )
    )
    while True:
        frame = json.loads(ws.recv(timeout=10))
        if frame.get("type") == "res":
            return frame


def _second_loopback_available() -> bool:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
    except OSError:
        return False
    return True


needs_127_0_0_2 = pytest.mark.skipif(
    not _second_loopback_available(), reason="127.0.0.2 cannot be bound here"
)


@pytest.fixture
def tailscale_gateway(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    write_config(
        home,
        "ts",
        {"gateway": {"auth": {"mode": "token", "token": TOKEN, "allowTailscale": True}}},
    )
    return gateway_factory("ts")


def _log(gw: GatewayProcess) -> str:
    return (gw.state_dir / "logs" / "gateway.log").read_text()


def test_tailscale_identity_from_loopback_is_accepted(tailscale_gateway: GatewayProcess) -> None:
    ws = _raw(
        tailscale_gateway.port,
        {"Tailscale-User-Login": "alice@example.com", "X-Forwarded-For": "100.101.102.103"},
    )
    reply = _hello(ws, scopes=["operator.read"])
    assert reply["ok"] is True, reply
    assert reply["payload"]["auth"]["method"] == "tailscale"
    assert reply["payload"]["auth"]["scopes"] == ["operator.read"]
    ws.close()
    wait_until(lambda: "authenticated by tailscale as alice@example.com" in _log(tailscale_gateway))


@needs_127_0_0_2
def test_tailscale_identity_from_an_untrusted_peer_is_ignored_and_logged(
    tailscale_gateway: GatewayProcess,
) -> None:
    # 127.0.0.2 is loopback, but not one of the trusted proxy addresses (127.0.0.1, ::1).
    ws = _raw(tailscale_gateway.port, {"Tailscale-User-Login": "mallory@example.com"}, "127.0.0.2")
    reply = _hello(ws)
    assert reply["ok"] is False
    assert reply["error"]["details"] == {"code": "DEVICE_IDENTITY_REQUIRED"}
    ws.close()
    wait_until(
        lambda: (
            "ignoring identity header(s) tailscale-user-login from 127.0.0.2"
            in _log(tailscale_gateway)
        )
    )
    assert TOKEN not in _log(tailscale_gateway)


def test_identity_headers_ignored_when_not_configured(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    write_config(home, "plain", {"gateway": {"auth": {"mode": "token", "token": TOKEN}}})
    gw = gateway_factory("plain")
    ws = _raw(gw.port, {"Tailscale-User-Login": "eve@example.com", "X-Forwarded-User": "eve"})
    reply = _hello(ws)
    assert reply["error"]["details"] == {"code": "DEVICE_IDENTITY_REQUIRED"}
    ws.close()
    wait_until(lambda: "ignoring identity header(s)" in _log(gw) and "from 127.0.0.1" in _log(gw))


@pytest.fixture
def proxy_gateway(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    write_config(
        home,
        "tp",
        {
            "gateway": {
                "trustedProxies": ["127.0.0.1"],
                "auth": {
                    "mode": "trusted-proxy",
                    "token": TOKEN,
                    "trustedProxy": {"requiredHeaders": ["x-forwarded-proto"]},
                },
            }
        },
    )
    return gateway_factory("tp")


def test_trusted_proxy_user_accepted_from_the_proxy(proxy_gateway: GatewayProcess) -> None:
    headers = {
        "X-Forwarded-User": "bob@example.com",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Proto": "https",
    }
    ws = _raw(proxy_gateway.port, headers)
    reply = _hello(ws)
    assert reply["ok"] is True and reply["payload"]["auth"]["method"] == "trusted-proxy"
    assert reply["payload"]["snapshot"]["authMode"] == "trusted-proxy"
    ws.close()
    # Without the required header the identity does not count.
    ws = _raw(proxy_gateway.port, {"X-Forwarded-User": "bob@example.com"})
    assert _hello(ws)["error"]["details"] == {"code": "DEVICE_IDENTITY_REQUIRED"}
    ws.close()
    # The local CLI, which has no proxy in front, still gets in with the token.
    ws = _raw(proxy_gateway.port)
    assert _hello(ws, auth={"token": TOKEN})["payload"]["auth"]["method"] == "token"
    ws.close()


@needs_127_0_0_2
def test_trusted_proxy_headers_from_another_peer_are_refused(
    proxy_gateway: GatewayProcess,
) -> None:
    headers = {"X-Forwarded-User": "bob@example.com", "X-Forwarded-Proto": "https"}
    ws = _raw(proxy_gateway.port, headers, "127.0.0.2")
    reply = _hello(ws)
    assert reply["error"]["code"] == "NOT_PAIRED"
    assert reply["error"]["details"] == {"code": "DEVICE_IDENTITY_REQUIRED"}
    ws.close()
    wait_until(
        lambda: (
            "ignoring identity header(s) x-forwarded-user from 127.0.0.2: peer is not in "
            "gateway.trustedProxies" in _log(proxy_gateway)
        )
    )


def test_tls_gateway_serves_proxy_identities_too(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    write_config(
        home,
        "tsl",
        {
            "gateway": {
                "tls": {"enabled": True},
                "auth": {"mode": "token", "token": TOKEN, "allowTailscale": True},
            }
        },
    )
    gw = gateway_factory("tsl")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    ws = connect(
        f"wss://127.0.0.1:{gw.port}/",
        ssl=context,
        additional_headers={"Tailscale-User-Login": "carol@example.com"},
        compression=None,
        proxy=None,
        open_timeout=5,
        legacy=True,
    )
    json.loads(ws.recv(timeout=5))
    assert _hello(ws)["payload"]["auth"]["method"] == "tailscale"
    ws.close()
