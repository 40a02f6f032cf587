"""The OpenAI-compatible chat-completions backend, with node commands as tools.

Each round POSTs ``{model, messages, tools, stream:true}`` to
``<baseUrl>/chat/completions``. A server-sent-events answer streams its text to the run as it
comes (tool-call fragments are joined by index); a server that ignores ``stream`` and
answers one JSON object works the same, its text arriving as one delta. When the answer
asks for tool calls they run through the :class:`~.tools.ToolBox` (failures become error
results the model reads) and the next round carries their results; an answer without tool
calls is the reply. At most ``maxToolRounds`` rounds of tool calls, each request bounded by
``timeoutMs``.

The key (``apiKey``, or the environment variable named by ``apiKeyEnv``) goes only into the
Authorization header of requests to ``baseUrl``: it is never logged, and an error body that
echoes it has it masked before the message is shown anywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from ...profiles.config import AgentOpenAI
from ...protocol import codes
from .. import http_client
from .backend import BackendError, RunSink, Turn
from .tools import ToolBox
from .transcript import PlannedCall

_LOG = logging.getLogger("openclaw.gateway")
MAX_ERROR_CHARS = 200


def resolve_api_key(config: AgentOpenAI, env: Mapping[str, str]) -> tuple[str | None, str]:
    """The key and where it came from (for a log line that never shows the key)."""
    if config.api_key:
        return config.api_key, "agent.openai.apiKey"
    if config.api_key_env and env.get(config.api_key_env):
        return env[config.api_key_env], f"${config.api_key_env}"
    return None, "none"


class OpenAIBackend:
    """Chat completions with tool calling (module docstring)."""

    name = "openai"

    def __init__(self, config: AgentOpenAI, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self._key, self.key_source = resolve_api_key(config, os.environ if env is None else env)
        self.url = config.base_url.rstrip("/") + "/chat/completions"

    async def reply(self, turn: Turn, tools: ToolBox, sink: RunSink) -> str:
        """Run rounds until the model answers without tool calls."""
        messages: list[dict[str, Any]] = []
        if turn.system_prompt:
            messages.append({"role": "system", "content": turn.system_prompt})
        messages += [{"role": role, "content": text} for role, text in turn.history]
        messages.append({"role": "user", "content": turn.message})
        schemas = [tool.openai_schema() for tool in tools.tools]
        for _ in range(self.config.max_tool_rounds + 1):
            stream = _Stream(sink)
            answer = await self._complete(messages, schemas, stream)
            if isinstance(answer.get("usage"), dict):
                sink.usage(answer["usage"])
            message = _first_message(answer)
            calls = message.get("tool_calls") or []
            if not calls:
                text = message.get("content") or ""
                if not isinstance(text, str):
                    raise BackendError("the model answered with non-text content")
                if text and not stream.streamed:
                    sink.delta(text)
                return text
            messages.append(
                {"role": "assistant", "content": message.get("content"), "tool_calls": calls}
            )
            sink.tool_calls([_planned(call) for call in calls])
            for call in calls:
                messages.append(await self._run_tool(call, tools, sink))
        raise BackendError(
            f"the model still asked for tools after {self.config.max_tool_rounds} rounds"
        )

    async def _complete(
        self, messages: list[dict[str, Any]], schemas: list[dict[str, Any]], stream: _Stream
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if schemas:
            request["tools"] = schemas
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream, application/json",
        }
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        body = json.dumps(request).encode()
        timeout_s = self.config.timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout_s):
                response = await http_client.request(
                    "POST", self.url, body=body, headers=headers, timeout=None, on_line=stream.feed
                )
        except TimeoutError:
            raise BackendError(
                f"model endpoint did not answer within {timeout_s:g}s", codes.AGENT_TIMEOUT
            ) from None
        except http_client.HttpError as err:
            raise BackendError(f"model endpoint unreachable: {self._mask(str(err))}") from None
        if response.status != 200:
            raise BackendError(self._http_failure(response), _failure_code(response.status))
        if stream.started:
            return stream.answer()
        try:
            answer = json.loads(response.body)
        except ValueError:
            raise BackendError("model endpoint answered with invalid JSON") from None
        if not isinstance(answer, dict):
            raise BackendError("model endpoint answered with an unexpected shape")
        return answer

    async def _run_tool(self, call: Any, tools: ToolBox, sink: RunSink) -> dict[str, Any]:
        planned = _planned(call)
        call_id, name, args = planned.call_id, planned.name, planned.args
        sink.tool_start(call_id, name, args)
        tool = tools.tool(name)
        if tool is None:
            ok, result = False, {"code": "UNKNOWN_TOOL", "message": f"no tool named {name!r}"}
        elif not isinstance(args, dict):
            ok, result = (
                False,
                {"code": "INVALID_ARGUMENTS", "message": "arguments must be a JSON object"},
            )
        else:
            ok, result = await tools.call(tool.node_id, tool.command, args)
        sink.tool_result(call_id, name, result, is_error=not ok)
        content = json.dumps(result if ok else {"error": result}, ensure_ascii=False)
        return {"role": "tool", "tool_call_id": call_id, "content": content}

    def _http_failure(self, response: http_client.HttpResponse) -> str:
        detail = ""
        try:
            parsed = json.loads(response.body)
            error = parsed.get("error") if isinstance(parsed, dict) else None
            if isinstance(error, dict):
                detail = str(error.get("message") or "")
            elif isinstance(error, str):
                detail = error
        except ValueError:
            detail = response.body[:MAX_ERROR_CHARS].decode("utf-8", "replace")
        detail = self._mask(" ".join(detail.split()))[:MAX_ERROR_CHARS]
        what = "rate limited" if response.status == 429 else "failed"
        return f"model endpoint {what} (HTTP {response.status})" + (f": {detail}" if detail else "")

    def _mask(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text


class _Stream:
    """Assembles a streamed answer (``data:`` lines of chat.completion.chunk objects)."""

    def __init__(self, sink: RunSink) -> None:
        self.sink = sink
        self.started = False
        self.streamed = False  # some text went to the sink
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None

    def feed(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return  # comments, event names, blank separators
        data = line[5:].strip()
        self.started = True
        if data == b"[DONE]":
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            raise BackendError("model endpoint sent an invalid stream event") from None
        if not isinstance(chunk, dict):
            return
        if isinstance(chunk.get("error"), dict):
            message = str(chunk["error"].get("message") or "error")[:MAX_ERROR_CHARS]
            raise BackendError(f"model endpoint failed mid-stream: {message}")
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return
        delta = choices[0].get("delta")
        if not isinstance(delta, dict):
            return
        content = delta.get("content")
        if isinstance(content, str) and content:
            self.text.append(content)
            self.sink.delta(content)
            self.streamed = True
        for fragment in delta.get("tool_calls") or []:
            if isinstance(fragment, dict):
                self._join_call(fragment)

    def _join_call(self, fragment: dict[str, Any]) -> None:
        index = fragment.get("index", 0)
        call = self.calls.setdefault(
            index if isinstance(index, int) else 0,
            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if fragment.get("id"):
            call["id"] = str(fragment["id"])
        function = fragment.get("function")
        if isinstance(function, dict):
            if function.get("name"):
                call["function"]["name"] += str(function["name"])
            if function.get("arguments"):
                call["function"]["arguments"] += str(function["arguments"])

    def answer(self) -> dict[str, Any]:
        """The assembled answer, shaped like a non-streamed one."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None}
        if self.calls:
            message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
        answer: dict[str, Any] = {"choices": [{"message": message}]}
        if self.usage is not None:
            answer["usage"] = self.usage
        return answer


def _planned(call: Any) -> PlannedCall:
    """A ``tool_calls`` entry: its id, function name and arguments (None: not JSON)."""
    call_id = str(call.get("id") or "") if isinstance(call, dict) else ""
    function = call.get("function") if isinstance(call, dict) else None
    name = str(function.get("name") or "") if isinstance(function, dict) else ""
    raw_args = function.get("arguments") if isinstance(function, dict) else None
    try:
        args = json.loads(raw_args) if isinstance(raw_args, str) and raw_args else {}
    except ValueError:
        args = None
    return PlannedCall(call_id, name, args)


def _failure_code(status: int) -> str:
    return codes.RATE_LIMITED if status == 429 else codes.UNAVAILABLE


def _first_message(answer: dict[str, Any]) -> dict[str, Any]:
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise BackendError("model endpoint answered without choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise BackendError("model endpoint answered without a message")
    return message
