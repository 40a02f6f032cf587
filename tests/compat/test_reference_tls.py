"""The real OpenClaw CLI against a TLS gateway of ours, pinned by gateway.remote.tlsFingerprint.

The reference CLI has no fingerprint flag on ``gateway health``; it pins from its config
(``gateway.mode: "remote"`` + ``gateway.remote.{url, token, tlsFingerprint}``), checking the
pin before sending its upgrade request. Skips (fails in CI) without the reference client,
like test_reference_client.py.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GatewayProcess
from reference import Result, client_env, run

from openclaw_multi.protocol.tls import format_fingerprint

pytestmark = pytest.mark.e2e

TOKEN = "ref-tls-" + uuid.uuid4().hex


@pytest.fixture
def tls_gateway(
    reference_cli: Path, home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> GatewayProcess:
    state = home / ".openclaw-compat"
    state.mkdir()
    config = {"gateway": {"tls": {"enabled": True}, "auth": {"mode": "token", "token": TOKEN}}}
    (state / "openclaw.json").write_text(json.dumps(config))
    return gateway_factory("compat")


def _ref_health(tmp_path: Path, url: str, pin: str) -> Result:
    env = client_env(tmp_path / "client-home")
    state = Path(env["OPENCLAW_STATE_DIR"])
    state.mkdir(exist_ok=True)
    remote = {"url": url, "token": TOKEN, "tlsFingerprint": pin}
    (state / "openclaw.json").write_text(
        json.dumps({"gateway": {"mode": "remote", "remote": remote}})
    )
    return run(env, "gateway", "health", "--json")


def test_reference_cli_pins_our_certificate(tls_gateway: GatewayProcess, tmp_path: Path) -> None:
    pem = (tls_gateway.state_dir / "tls" / "gateway-cert.pem").read_text()
    fp = format_fingerprint(hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest())
    url = f"wss://127.0.0.1:{tls_gateway.port}"
    ok = _ref_health(tmp_path, url, fp)
    assert ok.returncode == 0, ok.stderr
    health = json.loads(ok.stdout)
    assert health["ok"] is True and health["pid"] == tls_gateway.pid
    wrong = _ref_health(tmp_path, url, "00" * 32)
    assert wrong.returncode != 0
    assert "gateway tls fingerprint mismatch" in wrong.stdout + wrong.stderr
