"""``openclaw gateway agent``: send one message to the agent, optionally follow the run.

Without ``--expect-final`` the command prints the run id once the gateway accepted the run
and exits (the run goes on in the gateway). With it, the run is followed to its end: the
assistant's text is printed to stdout as it streams, tool calls to stderr, and the exit
code is the outcome (0 ok; 1 error or aborted, with the gateway's reason). Ctrl+C stops the
run in the gateway too (``chat.abort``) and exits 130.

``--json`` prints JSON Lines instead, one object per line: ``{"type":"accepted",
"payload":...}``, then (with ``--expect-final``) ``{"type":"agent", "payload":...}`` for each
``agent`` event of the run, and ``{"type":"final", "payload":...}`` (a failed run ends with
``{"type":"error", "error":{code, message}}`` and exit 1).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import TYPE_CHECKING, Any

import click
import msgspec

from ..errors import GatewayCallFailed, GatewayError
from .context import CliContext
from .gateway_cmds import ClientArgs, _client_options, _with_client
from .output import terminal_safe

if TYPE_CHECKING:
    from ..client.gateway import GatewayClient
    from ..protocol.frames import IncomingEvent

FOLLOW_TIMEOUT_S = 600.0
"""``--timeout`` when following a run and none is given: the gateway's default run bound."""
CONNECT_GRACE_S = 10.0
ABORT_TIMEOUT_S = 2.0
"""How long Ctrl+C waits for ``chat.abort`` to stop the run (the reference's 2 s)."""
EXIT_INTERRUPTED = 130
"""Exit code after Ctrl+C (SIGINT), as the reference's agent command."""
"""Room for connecting and closing around a followed run, which ``--timeout`` bounds alone."""


@click.command("agent")
@click.option("--message", "-m", required=True, metavar="TEXT", help="What to say to the agent.")
@click.option("--session", "session_key", metavar="KEY", help="Session key (default: main).")
@click.option(
    "--expect-final", is_flag=True, help="Follow the run: stream it and wait for its outcome."
)
@click.option(
    "--idempotency-key",
    metavar="KEY",
    help="Run id; the same key again is the same run (default: a new uuid).",
)
@_client_options
@click.pass_obj
@click.pass_context
def agent(
    ctx: click.Context,
    obj: CliContext,
    message: str,
    session_key: str | None,
    expect_final: bool,
    idempotency_key: str | None,
    client: ClientArgs,
) -> None:
    """Send MESSAGE to the agent; with --expect-final, print the run as it streams."""
    timeout = client.timeout
    if expect_final and ctx.get_parameter_source("timeout") is click.core.ParameterSource.DEFAULT:
        timeout = FOLLOW_TIMEOUT_S  # a model run outlasts the 10 s meant for quick calls
    target = client.target(obj)
    params: dict[str, Any] = {
        "message": message,
        "idempotencyKey": idempotency_key or str(uuid.uuid4()),
    }
    if session_key:
        params["sessionKey"] = session_key
    printer = _Printer(as_json=client.as_json, run_id=params["idempotencyKey"])

    async def work(link: GatewayClient) -> None:
        if not expect_final:
            accepted = await link.call("agent", params, timeout=timeout)
            printer.accepted(accepted)
            return
        follower = asyncio.create_task(printer.follow(link))
        try:
            async with asyncio.timeout(timeout):
                final = await link.call_final("agent", params, on_accepted=printer.accepted)
        except TimeoutError:
            # Say what happened: the gateway did answer, the run is just not over (and goes on).
            printer.drain(link)
            printer.failed(GatewayCallFailed("TIMEOUT", f"no outcome within {timeout:g}s"))
            raise GatewayError(
                f"agent run {printer.run_id} did not end within {timeout:g}s; it goes on in "
                f"the gateway (see `openclaw gateway call agent.wait`)"
            ) from None
        except GatewayCallFailed as err:
            printer.drain(link)
            printer.failed(err)
            raise
        except asyncio.CancelledError:
            # Ctrl+C (asyncio.Runner cancels this task): stop the run too, as the reference
            # does, rather than leave it holding its session.
            await printer.abort(link)
            raise
        finally:
            follower.cancel()
        printer.drain(link)  # events that came in just before the final answer
        printer.final(final)

    try:
        _with_client(target, timeout + CONNECT_GRACE_S if expect_final else timeout, work)
    except KeyboardInterrupt:
        if printer.stopped is None:
            raise  # not following a run: click's "Aborted!"
        outcome = "aborted" if printer.stopped else "not confirmed aborted (it may go on)"
        click.echo(f"\nerror: interrupted: agent run {printer.run_id} {outcome}", err=True)
        ctx.exit(EXIT_INTERRUPTED)


class _Printer:
    """Prints one run's answers and events, as text or JSON Lines (module docstring)."""

    def __init__(self, *, as_json: bool, run_id: str) -> None:
        self.as_json = as_json
        self.run_id = run_id
        self.streamed = False
        self.session_key: str | None = None  # canonical, from the accepted answer
        self.stopped: bool | None = None  # after Ctrl+C: did chat.abort stop the run?

    def _line(self, kind: str, **fields: Any) -> None:
        click.echo(json.dumps({"type": kind, **fields}, ensure_ascii=False))

    def accepted(self, payload: Any) -> None:
        if isinstance(payload, dict) and isinstance(payload.get("sessionKey"), str):
            self.session_key = payload["sessionKey"]
        if self.as_json:
            self._line("accepted", payload=payload)
        elif isinstance(payload, dict):
            click.echo(
                terminal_safe(
                    f"accepted run {payload.get('runId')} (session {payload.get('sessionKey')})",
                    one_line=True,
                ),
                err=True,
            )

    async def abort(self, link: GatewayClient) -> None:
        """Ask the gateway to stop this run (``chat.abort``); record whether it did."""
        self.stopped = False
        if self.session_key is None:
            return  # not accepted yet: there is no run to stop
        args = {"sessionKey": self.session_key, "runId": self.run_id}
        try:
            reply = await link.call("chat.abort", args, timeout=ABORT_TIMEOUT_S)
        except (GatewayError, TimeoutError):
            return
        self.stopped = isinstance(reply, dict) and self.run_id in (reply.get("runIds") or [])

    async def follow(self, link: GatewayClient) -> None:
        while True:
            self._event(await link.events.get())

    def drain(self, link: GatewayClient) -> None:
        while not link.events.empty():
            self._event(link.events.get_nowait())

    def _event(self, event: IncomingEvent) -> None:
        if event.event != "agent":
            return
        try:
            payload = msgspec.json.decode(event.payload)
        except msgspec.DecodeError:
            return
        if not isinstance(payload, dict) or payload.get("runId") != self.run_id:
            return
        if self.as_json:
            self._line("agent", payload=payload)
            return
        stream, data = payload.get("stream"), payload.get("data")
        if not isinstance(data, dict):
            return
        if stream == "assistant" and isinstance(data.get("delta"), str):
            click.echo(terminal_safe(data["delta"]), nl=False)
            sys.stdout.flush()
            self.streamed = True
        elif stream == "tool" and data.get("phase") == "start":
            args = json.dumps(data.get("args"), ensure_ascii=False)
            click.echo(terminal_safe(f"[tool] {data.get('name')} {args}", one_line=True), err=True)
        elif stream == "tool" and data.get("phase") == "result":
            outcome = "failed" if data.get("isError") else "ok"
            click.echo(
                terminal_safe(f"[tool] {data.get('name')} {outcome}", one_line=True), err=True
            )

    def final(self, payload: Any) -> None:
        if self.as_json:
            self._line("final", payload=payload)
        elif self.streamed:
            click.echo()  # end the streamed line
        status = payload.get("status") if isinstance(payload, dict) else None
        if status != "ok":
            summary = payload.get("summary") if isinstance(payload, dict) else None
            raise GatewayError(f"agent run {self.run_id} ended: {status} ({summary})")

    def failed(self, err: GatewayCallFailed) -> None:
        if self.as_json:
            self._line("error", error={"code": err.code, "message": err.message})
        elif self.streamed:
            click.echo()
