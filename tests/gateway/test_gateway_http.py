"""HTTP on the gateway port: probes, the page, methods and headers."""

from __future__ import annotations

import json
import socket

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


def test_page_names_profile_port_and_version(gateway: GatewayProcess) -> None:
    status, headers, body = get(gateway.port, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in headers["content-security-policy"]
    text = body.decode()
    assert ">work<" in text and f">{gateway.port}<" in text and "openclaw-multi" in text


def test_unknown_path_is_404_and_garbage_is_400(gateway: GatewayProcess) -> None:
    assert get(gateway.port, "/nope")[0] == 404
    assert http(gateway.port, b"BLAH\r\n\r\n")[0] == 400


def test_oversized_head_is_431(gateway: GatewayProcess) -> None:
    big = b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n"
    assert http(gateway.port, big)[0] == 431
