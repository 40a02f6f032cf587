"""A Telegram Bot API double on loopback: ``getUpdates`` long polling and ``sendMessage``.

Tests push inbound messages with :meth:`BotApiDouble.push`, read what the bot posted from
:attr:`BotApiDouble.sent`, and script failures (HTTP 500, 429 with ``retry_after``, a bad
token) with :meth:`BotApiDouble.fail_next`. Offsets behave as Telegram's: asking with
``offset`` confirms (drops) every update before it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_POLL_WAIT_S = 5.0  # keep a stopped test from hanging on a long poll


@dataclass
class Failure:
    method: str
    status: int
    retry_after: int | None = None
    description: str = "Internal Server Error"


@dataclass
class BotApiDouble:
    token: str
    host: str = "127.0.0.1"
    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._next_update = 1
        self._next_message = 100
        self._closed = False
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, answer = double._handle(self.path, body)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the gateway stopped mid long poll: nobody is listening

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

        self.server = ThreadingHTTPServer((self.host, 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_address[1]}"

    # -- what tests do ---------------------------------------------------------------------
    def push(self, chat_id: int, text: str, user_id: int | None = None) -> int:
        """Queue an inbound text message; returns its update_id."""
        with self._cond:
            update_id = self._next_update
            self._next_update += 1
            self._next_message += 1
            self.updates.append(
                {
                    "update_id": update_id,
                    "message": {
                        "message_id": self._next_message,
                        "date": int(time.time()),
                        "chat": {"id": chat_id, "type": "private"},
                        "from": {"id": user_id or chat_id, "is_bot": False, "first_name": "T"},
                        "text": text,
                    },
                }
            )
            self._cond.notify_all()
            return update_id

    def fail_next(
        self, method: str, status: int, *, retry_after: int | None = None, count: int = 1
    ) -> None:
        """The next ``count`` calls of ``method`` answer ``status`` (429 may carry retry_after)."""
        with self._cond:
            for _ in range(count):
                self.failures.append(Failure(method, status, retry_after))

    def sent_to(self, chat_id: int) -> list[str]:
        with self._cond:
            return [m["text"] for m in self.sent if m["chat_id"] == chat_id]

    def count_calls(self, method: str) -> int:
        with self._cond:
            return sum(1 for name, _ in self.calls if name == method)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # -- the API ---------------------------------------------------------------------------
    def _handle(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        prefix = f"/bot{self.token}/"
        if not path.startswith(prefix):
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        method = path[len(prefix) :]
        with self._cond:
            self.calls.append((method, body))
            failure = next((f for f in self.failures if f.method == method), None)
            if failure is not None:
                self.failures.remove(failure)
                answer: dict[str, Any] = {
                    "ok": False,
                    "error_code": failure.status,
                    "description": failure.description,
                }
                if failure.retry_after is not None:
                    answer["parameters"] = {"retry_after": failure.retry_after}
                    answer["description"] = "Too Many Requests: retry later"
                return failure.status, answer
        if method == "getUpdates":
            return 200, {"ok": True, "result": self._get_updates(body)}
        if method == "sendMessage":
            return self._send_message(body)
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}

    def _get_updates(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        offset = body.get("offset")
        wait = min(float(body.get("timeout") or 0), MAX_POLL_WAIT_S)
        deadline = time.monotonic() + wait
        with self._cond:
            if offset is not None:
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while not self.updates and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.updates)

    def _send_message(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id, text = body.get("chat_id"), body.get("text")
        if chat_id is None or not text:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: text empty"}
        if len(text) > 4096:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: too long"}
        with self._cond:
            self._next_message += 1
            record = {"chat_id": chat_id, "text": text, "message_id": self._next_message}
            self.sent.append(record)
            self._cond.notify_all()
        return 200, {
            "ok": True,
            "result": {
                "message_id": record["message_id"],
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "text": text,
            },
        }


@contextmanager
def bot_api(token: str = "123456:TEST-token") -> Iterator[BotApiDouble]:
    double = BotApiDouble(token)
    try:
        yield double
    finally:
        double.close()
