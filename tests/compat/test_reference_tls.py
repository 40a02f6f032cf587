"""The real OpenClaw CLI against a TLS gateway of ours, pinned by gateway.remote.tlsFingerprint.

The reference CLI has no fingerprint flag on ``gateway health``; it pins from its config
(``gateway.mode: "remote"`` + ``gateway.remote.{url, token, tlsFingerprint}``), checking the
pin before sending its upgrade request. Skips (fails in CI) without the reference client,
like test_reference_client.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import ssl
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GatewayProcess, clean_env

from openclaw_multi.protocol.tls import format_fingerprint

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
WRAPPER = REPO / ".cache" / "reference-client" / "bin" / "openclaw-ref"
TOKEN = "ref-tls-" + uuid.uuid4().hex
CLI_TIMEOUT = 60.0


@pytest.fixture
def tls_gateway(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    if not os.access(WRAPPER, os.X_OK):
        message = (
            f"reference client not installed ({WRAPPER} missing): "
            "run ./scripts/setup-reference-client"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    state = home / ".openclaw-compat"
    state.mkdir()
    config = {"gateway": {"tls": {"enabled": True}, "auth": {"mode": "token", "token": TOKEN}}}
    (state / "openclaw.json").write_text(json.dumps(config))
    return gateway_factory("compat")


def _ref_health(tmp_path: Path, url: str, pin: str) -> subprocess.CompletedProcess[str]:
    client_home = tmp_path / "client-home"
    state = client_home / ".openclaw"
    state.mkdir(parents=True, exist_ok=True)
    remote = {"url": url, "token": TOKEN, "tlsFingerprint": pin}
    (state / "openclaw.json").write_text(
        json.dumps({"gateway": {"mode": "remote", "remote": remote}})
    )
    env = clean_env(
        client_home,
        OPENCLAW_STATE_DIR=str(state),
        OPENCLAW_NO_AUTO_UPDATE="1",
        OPENCLAW_DISABLE_BONJOUR="1",
        DO_NOT_TRACK="1",
        NO_COLOR="1",
    )
    proc = subprocess.Popen(
        [str(WRAPPER), "gateway", "health", "--json"],
        env=env,
        cwd=client_home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("openclaw-ref still running") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


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
