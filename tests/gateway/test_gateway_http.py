"""HTTP on the gateway port: probes, the page, methods and headers."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from conftest import GatewayProcess

pytestmark = pytest.mark.e2e


def http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def get(
    port: int, path: str, method: str = "GET", version: str = "HTTP/1.1"
) -> tuple[int, dict[str, str], bytes]:
    return http(port, f"{method} {path} {version}\r\nHost: localhost\r\n\r\n".encode())


@pytest.mark.parametrize("path", ["/health", "/healthz"])
def test_liveness(gateway: GatewayProcess, path: str) -> None:
    status, headers, body = get(gateway.port, path)
    assert status == 200 and json.loads(body) == {"ok": True, "status": "live"}
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert headers["content-type"] == "application/json"


@pytest.mark.parametrize("path", ["/ready", "/readyz"])
def test_readiness(gateway: GatewayProcess, path: str) -> None:
    status, _, body = get(gateway.port, path)
    payload = json.loads(body)
    assert status == 200 and payload["ready"] is True and payload["failing"] == []
    assert payload["uptimeMs"] >= 0


def test_startupz(gateway: GatewayProcess) -> None:
    status, _, body = get(gateway.port, "/startupz", version="HTTP/1.0")
    payload = json.loads(body)
    assert status == 200 and payload["status"] == "started" and payload["version"]


def test_head_has_headers_and_no_body(gateway: GatewayProcess) -> None:
    status, headers, body = get(gateway.port, "/healthz", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_on_probe_paths_are_405(gateway: GatewayProcess, method: str) -> None:
    status, headers, _ = get(gateway.port, "/readyz", method=method)
    assert status == 405 and headers["allow"] == "GET, HEAD"


CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
UI = Path(__file__).resolve().parents[2] / "openclaw_multi" / "gateway" / "ui"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/", "text/html"),
        ("/index.html", "text/html"),
        ("/control.js", "text/javascript"),
        ("/control.css", "text/css"),
    ],
)
def test_control_ui_files_with_strict_headers(
    gateway: GatewayProcess, path: str, kind: str
) -> None:
    status, headers, body = get(gateway.port, path)
    assert status == 200 and headers["content-type"].startswith(kind) and body
    assert headers["content-security-policy"] == CSP
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    status, headers, head_body = get(gateway.port, path, method="HEAD")
    assert status == 200 and head_body == b"" and int(headers["content-length"]) == len(body)
    status, headers, _ = get(gateway.port, path, method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_page_holds_no_data_before_login(gateway: GatewayProcess) -> None:
    """Identity comes over the authenticated WebSocket, never in the page itself."""
    _, _, body = get(gateway.port, "/")
    text = body.decode()
    assert str(gateway.port) not in text and str(gateway.state_dir) not in text
    assert '<script src="/control.js" defer></script>' in text
    assert "<style" not in text and " style=" not in text and "onclick" not in text


def test_ui_files_load_nothing_from_elsewhere() -> None:
    files = sorted(UI.iterdir())
    assert [f.name for f in files] == ["control.css", "control.js", "index.html"]
    for asset in files:
        text = asset.read_text()
        assert "https://" not in text and "http://" not in text, asset
        assert "localStorage." not in text and "document.cookie" not in text, asset


def test_unknown_path_is_404_and_garbage_is_400(gateway: GatewayProcess) -> None:
    assert get(gateway.port, "/nope")[0] == 404
    assert http(gateway.port, b"BLAH\r\n\r\n")[0] == 400
    # Errors and probes carry the no-framing, no-script headers too, not only the page.
    for status, headers, _ in (
        get(gateway.port, "/nope"),
        get(gateway.port, "/healthz"),
        http(gateway.port, b"BLAH\r\n\r\n"),
    ):
        assert headers["x-frame-options"] == "DENY", status
        assert headers["content-security-policy"].startswith("default-src 'none'"), status
        assert headers["x-content-type-options"] == "nosniff", status


def test_oversized_head_is_431(gateway: GatewayProcess) -> None:
    big = b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n"
    assert http(gateway.port, big)[0] == 431


def _browser_connect(port: int, origin: str | None, client: dict[str, str]) -> dict[str, Any]:
    """Connect as a browser client with ``origin``; the connect response and close code."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(
        f"ws://127.0.0.1:{port}/",
        origin=origin,  # type: ignore[arg-type]
        proxy=None,
        open_timeout=5,
        close_timeout=5,
        compression=None,
    ) as ws:
        json.loads(ws.recv(timeout=5))  # connect.challenge
        params = {
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": client,
            "role": "operator",
            "scopes": ["operator.read"],
        }
        ws.send(json.dumps({"type": "req", "id": "1", "method": "connect", "params": params}))
        res: dict[str, Any] = json.loads(ws.recv(timeout=5))
        try:
            ws.recv(timeout=5)
        except ConnectionClosed as closed:
            res["closeCode"] = closed.rcvd.code if closed.rcvd else None
        return res


CONTROL_UI = {
    "id": "openclaw-control-ui",
    "version": "control-ui",
    "platform": "web",
    "mode": "webchat",
}


def test_browser_clients_need_an_allowed_origin(gateway: GatewayProcess) -> None:
    port = gateway.port
    own = f"http://127.0.0.1:{port}"
    assert _browser_connect(port, own, CONTROL_UI)["ok"] is True
    for origin in ("https://evil.example", None):
        res = _browser_connect(port, origin, CONTROL_UI)
        assert res["ok"] is False and res["closeCode"] == 1008
        assert res["error"]["code"] == "INVALID_REQUEST"
        assert res["error"]["message"].startswith("origin not allowed")
        assert res["error"]["details"]["code"] == "CONTROL_UI_ORIGIN_NOT_ALLOWED"
    webchat = {"id": "webchat-ui", "version": "1", "platform": "web", "mode": "ui"}
    assert _browser_connect(port, "https://evil.example", webchat)["ok"] is False
    # Any client id is judged once the upgrade carries an Origin (the reference's
    # enforceOriginCheckForAnyClient): a page elsewhere cannot pose as the CLI (CSWSH).
    cli = {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"}
    res = _browser_connect(port, "https://evil.example", cli)
    assert res["ok"] is False and res["closeCode"] == 1008
    assert res["error"]["details"]["code"] == "CONTROL_UI_ORIGIN_NOT_ALLOWED"
    assert _browser_connect(port, own, cli)["ok"] is True
    # Without an Origin (not a browser) the CLI is not judged by it.
    assert _browser_connect(port, None, cli)["ok"] is True


def test_allowed_origins_config(home: Path, gateway_factory: Any) -> None:
    state = home / ".openclaw-web"
    state.mkdir()
    config = {"gateway": {"controlUi": {"allowedOrigins": ["https://ops.example"]}}}
    (state / "openclaw.json").write_text(json.dumps(config))
    gw = gateway_factory("web")
    assert _browser_connect(gw.port, "https://ops.example", CONTROL_UI)["ok"] is True
    assert _browser_connect(gw.port, "https://other.example", CONTROL_UI)["ok"] is False
