"""A tiny synchronous wire client for gateway tests (websockets' sync client underneath).

It speaks raw frames so tests can send exactly what the rule under test needs, including
frames a well-behaved client never would.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

CLI_CLIENT = {"id": "cli", "version": "1.0.0", "platform": "linux", "mode": "cli"}
ALL_SCOPES = ["operator.read", "operator.write", "operator.admin"]


def connect_params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "minProtocol": 4,
        "maxProtocol": 4,
        "client": dict(CLI_CLIENT),
        "role": "operator",
        "scopes": list(ALL_SCOPES),
    }
    params.update(overrides)
    return params


class Wire:
    """One raw connection: the challenge is read on open."""

    def __init__(self, port: int, *, max_size: int | None = 64 * 1024 * 1024) -> None:
        self.ws: ClientConnection = connect(
            f"ws://127.0.0.1:{port}/",
            compression=None,
            proxy=None,
            open_timeout=5,
            close_timeout=5,
            max_size=max_size,
            ping_interval=None,
            legacy=True,  # a plain object, closed explicitly by each test
        )
        self.challenge = self.recv()

    def send(self, frame: Any) -> None:
        self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        return json.loads(self.ws.recv(timeout=timeout))

    def request(self, method: str, params: Any = None, *, req_id: str | None = None) -> str:
        req_id = req_id or f"1:{uuid.uuid4()}"
        frame: dict[str, Any] = {"type": "req", "id": req_id, "method": method}
        if params is not None:
            frame["params"] = params
        self.send(frame)
        return req_id

    def response(self, req_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The response to ``req_id``, skipping events that arrive in between."""
        while True:
            frame = self.recv(timeout)
            if frame.get("type") == "res" and frame.get("id") == req_id:
                return frame

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        return self.response(self.request(method, params))

    def hello(self, **overrides: Any) -> dict[str, Any]:
        return self.call("connect", connect_params(**overrides))

    def closed_with(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """Drain until the server closes; return (close code, reason)."""
        try:
            while True:
                self.ws.recv(timeout=timeout)
        except ConnectionClosed as closed:
            rcvd = closed.rcvd
            return (rcvd.code if rcvd else None, rcvd.reason if rcvd else "")

    def close(self) -> None:
        self.ws.close()
