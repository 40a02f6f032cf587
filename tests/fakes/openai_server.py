"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 (port 0), for tests.

Each POST to ``/v1/chat/completions`` takes the next scripted step:

- :func:`reply` text: a final assistant answer (with ``usage``);
- :func:`tool_call` name, args: an answer asking for one tool call;
- :func:`http_error` status, message: that status with an OpenAI-style error body;
- :data:`HANG`: no answer until the server stops (for timeouts);
- :func:`sse` chunks: a ``text/event-stream`` answer, chunked, one ``data:`` event per
  chunk then ``data: [DONE]`` (:func:`text_chunks`, :func:`tool_call_chunks` build them).

Every request is recorded (path, headers with lowercase names, decoded JSON body) in
:attr:`FakeOpenAI.requests`. Runs in a thread, so it serves a gateway process and an
in-process asyncio client alike.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG: dict[str, Any] = {"kind": "hang"}


def reply(text: str) -> dict[str, Any]:
    return {
        "kind": "json",
        "status": 200,
        "body": {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        },
    }


def tool_call(name: str, args: dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    return {
        "kind": "json",
        "status": 200,
        "body": {
            "id": "chatcmpl-tool",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": call_id,
                                "type": "function",
                                "function": {"name": name, "arguments": json.dumps(args)},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
        },
    }


def sse(chunks: list[dict[str, Any]], *, done: bool = True) -> dict[str, Any]:
    return {"kind": "sse", "chunks": chunks, "done": done}


def text_chunks(*pieces: str, usage: bool = True) -> list[dict[str, Any]]:
    chunks = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    if usage:
        total = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        chunks.append({"choices": [], "usage": total})
    return chunks


def tool_call_chunks(name: str, arguments: str, call_id: str = "call_s") -> list[dict[str, Any]]:
    """One call split the way models stream it: id and name first, arguments in pieces."""
    half = len(arguments) // 2
    first = {"index": 0, "id": call_id, "type": "function", "function": {"name": name}}
    parts = [first]
    parts += [
        {"index": 0, "function": {"arguments": a}} for a in (arguments[:half], arguments[half:])
    ]
    return [{"choices": [{"index": 0, "delta": {"tool_calls": [p]}}]} for p in parts]


def http_error(status: int, message: str) -> dict[str, Any]:
    return {
        "kind": "json",
        "status": status,
        "body": {"error": {"message": message, "type": "server_error"}},
    }


class FakeOpenAI:
    """The server (module docstring); use :func:`serve`."""

    def __init__(self, script: list[dict[str, Any]]) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.released = threading.Event()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with fake._lock:
                    fake.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": json.loads(raw),
                        }
                    )
                    step = fake.script.pop(0) if fake.script else http_error(500, "no script")
                if step["kind"] == "hang":
                    fake.released.wait(30)
                    return
                if step["kind"] == "sse":
                    self._stream(step)
                    return
                data = json.dumps(step["body"]).encode()
                self.send_response(step["status"])
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, step: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                events = [f"data: {json.dumps(c)}\n\n".encode() for c in step["chunks"]]
                if step["done"]:
                    events.append(b"data: [DONE]\n\n")
                for event in [b": keep-alive\n\n", *events]:
                    # split events across HTTP chunks too, as proxies do
                    for piece in (event[:7], event[7:]):
                        if piece:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                            self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests read fake.requests

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


@contextmanager
def serve(script: list[dict[str, Any]]) -> Iterator[FakeOpenAI]:
    """Run a :class:`FakeOpenAI` for the ``with`` block."""
    fake = FakeOpenAI(script)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
