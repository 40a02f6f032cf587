"""The node host's link to its gateway: connect as a node, serve invokes, reconnect.

Theory of operation: :meth:`NodeHost.run` loops until asked to stop. Each turn connects as
``role:"node"`` (``client.id`` ``node-host``, mode ``node``, the device block signed with this
profile's node key, the declared ``caps``/``commands``), then serves the link until it drops:
events are handled in the socket's callback: an inline command (commands.py) is answered
with ``node.invoke.result`` right there, any other ``node.invoke.request`` becomes a task that
answers when done; ``node.invoke.cancel`` cancels that task (a running ``system.run`` has its
process group killed). A link silent for two tick intervals is dropped, as the
protocol asks of clients. After a drop or a failed connect the host waits a capped,
jittered exponential backoff (:func:`~.rules.backoff_delay`), reset by every successful
connect. Stopping (SIGTERM/SIGINT) closes the link with 1000, cancels in-flight work, and
the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from ...errors import GatewayCallFailed, GatewayError, OpenClawError
from ...protocol.frames import IncomingEvent
from ..gateway import GatewayClient
from ..identity import DeviceAuthStore, DeviceIdentity
from .commands import CommandError, Handler, Invocation, Registry, decode_params
from .rules import backoff_delay, log_text

__all__ = ["NodeHost", "NodeLink"]

LOG = logging.getLogger("openclaw.node")
CONNECT_TIMEOUT_S: Final = 10.0
STABLE_LINK_S: Final = 10.0
"""A link that lasted this long resets the backoff even if it then failed."""


class InvokeRequest(msgspec.Struct, frozen=True, rename="camel"):
    """``node.invoke.request`` as the gateway sends it (docs/protocol.md, Nodes)."""

    id: str
    node_id: str
    command: str
    params_json: str | None = msgspec.field(default=None, name="paramsJSON")
    timeout_ms: int | None = None


class InvokeCancel(msgspec.Struct, frozen=True, rename="camel"):
    """``node.invoke.cancel``: the gateway stopped waiting for ``invokeId``."""

    invoke_id: str


_request_decoder: Final = msgspec.json.Decoder(InvokeRequest)
_cancel_decoder: Final = msgspec.json.Decoder(InvokeCancel)
_payload_encoder: Final = msgspec.json.Encoder()
_NOT_SUPPORTED: Final = CommandError("UNAVAILABLE", "command not supported")
_FAILED: Final = CommandError("UNAVAILABLE", "node invocation failed")
_UNENCODABLE: Final = CommandError("UNAVAILABLE", "node invocation failed: result is not JSON")


@dataclass(frozen=True)
class NodeLink:
    """Where and as whom to connect.

    Attributes:
        url: The gateway's WebSocket URL.
        identity: This node's key pair (its device id is its node id).
        device_auth: Where its device tokens are kept.
        token: A shared gateway token (never logged).
        password: A shared gateway password (never logged).
        tls_fingerprint: A pin for ``wss://``.
    """

    url: str
    identity: DeviceIdentity
    device_auth: DeviceAuthStore
    token: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    tls_fingerprint: str | None = None


class NodeHost:
    """One node host: a :class:`Registry` of commands served over a :class:`NodeLink`."""

    def __init__(
        self,
        link: NodeLink,
        registry: Registry,
        invocation: Callable[[InvokeRequest], Invocation],
        *,
        display_name: str,
        path_env: str,
        on_link: Callable[[bool, str | None], None] | None = None,
    ) -> None:
        """Set up a host; nothing runs until :meth:`run`.

        Args:
            link: Where and as whom to connect.
            registry: The commands served.
            invocation: Makes the :class:`Invocation` handed to a command.
            display_name: ``client.displayName``.
            path_env: ``pathEnv``.
            on_link: Told ``(connected, last error)`` whenever the link changes.
        """
        self.link = link
        self._on_link = on_link
        self.registry = registry
        self._invocation = invocation
        self.display_name = display_name
        self.path_env = path_env
        self.stopping = asyncio.Event()
        self.connects = 0
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._last_failure = ""
        self._last_seen = 0.0

    def stop(self) -> None:
        """Ask :meth:`run` to finish (safe from a signal handler)."""
        self.stopping.set()

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff, until :meth:`stop`."""
        attempt = 0
        LOG.info(
            "node host %s (node id %s) serving %s",
            self.display_name,
            self.link.identity.device_id,
            ", ".join(self.registry.commands),
        )
        while not self.stopping.is_set():
            client = await self._connect_unless_stopped()
            if client is not None:
                started = time.monotonic()
                await self._serve(client)
                if self.stopping.is_set():
                    break
                # A link that held resets the backoff; one dropped at once keeps growing it,
                # so a gateway that accepts and then closes is not hammered.
                if time.monotonic() - started >= STABLE_LINK_S:
                    attempt = 0
            delay = backoff_delay(attempt)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.stopping.wait()

    # -- connecting ------------------------------------------------------------------------
    async def _connect_unless_stopped(self) -> GatewayClient | None:
        """:meth:`_connect`, abandoned at once when a stop is asked for (SIGTERM mid-connect)."""
        connecting = asyncio.create_task(self._connect())
        stopping = asyncio.create_task(self.stopping.wait())
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
            return None
        return connecting.result()

    async def _connect(self) -> GatewayClient | None:
        link = self.link
        try:
            client = await GatewayClient.connect(
                link.url,
                token=link.token,
                password=link.password,
                client_id="node-host",
                mode="node",
                role="node",
                scopes=(),
                timeout=CONNECT_TIMEOUT_S,
                tls_fingerprint=link.tls_fingerprint,
                device=link.identity,
                device_auth=link.device_auth,
                display_name=self.display_name,
                caps=self.registry.caps,
                commands=self.registry.commands,
                path_env=self.path_env,
            )
        except GatewayCallFailed as err:
            self._note_failure(_describe_refusal(err))
            return None
        except OpenClawError as err:  # unreachable, TLS, a device token that cannot be saved
            self._note_failure(str(err))
            return None
        self.connects += 1
        self._last_failure = ""
        LOG.info("connected to gateway at %s as node %s", link.url, link.identity.device_id)
        self._tell(True, None)
        return client

    def _note_failure(self, text: str) -> None:
        # The same failure every backoff turn is logged once, not every few seconds.
        if text != self._last_failure:
            LOG.warning("%s (retrying)", text)
            self._last_failure = text
            self._tell(False, text)

    def _tell(self, connected: bool, error: str | None) -> None:
        if self._on_link is not None:
            self._on_link(connected, error)

    # -- serving ---------------------------------------------------------------------------
    async def _serve(self, client: GatewayClient) -> None:
        idle_s = 2 * client.hello.policy.tick_interval_ms / 1000
        loop = asyncio.get_running_loop()
        self._last_seen = loop.time()
        # From here events are handled in the socket's callback, in order: first what was
        # queued during the handshake, then each as it lands (no await in between).
        client.event_handler = functools.partial(self._on_event, client)
        while not client.events.empty():
            self._on_event(client, client.events.get_nowait())
        watchdog = asyncio.create_task(self._watch_ticks(loop, idle_s))
        closed = asyncio.create_task(client.wait_closed())
        stopping = asyncio.create_task(self.stopping.wait())
        try:
            await asyncio.wait({watchdog, closed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            client.event_handler = None
            for task in (watchdog, closed, stopping):
                task.cancel()
            await asyncio.gather(watchdog, closed, stopping, return_exceptions=True)
            await self._cancel_inflight()
            if self.stopping.is_set():
                await client.close()
                LOG.info("stopped; link to %s closed", self.link.url)
            else:
                await client.close()  # at once if the link is already down
                reason = client.close_reason or "link lost"
                LOG.warning("disconnected from gateway at %s (%s)", self.link.url, reason)
                self._tell(False, f"disconnected ({reason})")

    async def _watch_ticks(self, loop: asyncio.AbstractEventLoop, idle_s: float) -> None:
        """Return when nothing (not even a ``tick``) came for ``idle_s`` seconds."""
        while True:
            silent = loop.time() - self._last_seen
            if silent >= idle_s:
                LOG.warning("no tick from the gateway for %.0fs: dropping the link", idle_s)
                return
            await asyncio.sleep(idle_s - silent)

    def _on_event(self, client: GatewayClient, event: IncomingEvent) -> None:
        self._last_seen = asyncio.get_running_loop().time()
        name = event.event
        if name == "node.invoke.request":
            try:
                request = _request_decoder.decode(event.payload)
            except msgspec.ValidationError as err:
                LOG.warning("invalid node.invoke.request ignored: %s", err)
                return
            self._start_invoke(client, request)
        elif name == "node.invoke.cancel":
            try:
                cancel = _cancel_decoder.decode(event.payload)
            except msgspec.ValidationError:
                return
            running = self._inflight.get(cancel.invoke_id)
            if running is not None:
                LOG.info("invoke %s cancelled by the gateway", cancel.invoke_id)
                running.cancel()

    def _start_invoke(self, client: GatewayClient, request: InvokeRequest) -> None:
        """Answer an inline command now; start a task for the others."""
        command = request.command
        inline = self.registry.inline.get(command)
        if inline is not None:
            try:
                params = decode_params(request.params_json)
                payload = inline(params, self._invocation(request))
            except CommandError as err:
                self._answer(client, request, error=err)
            except Exception:
                LOG.exception("%s failed (invoke %s)", command, request.id)
                self._answer(client, request, error=_FAILED)
            else:
                self._answer(client, request, payload=payload)
            return
        handler = self.registry.handlers.get(command)
        if handler is None:
            self._answer(client, request, error=_NOT_SUPPORTED)
            return
        task = asyncio.create_task(self._run_invoke(client, request, handler))
        self._inflight[request.id] = task
        task.add_done_callback(functools.partial(self._forget, request.id))

    def _forget(self, invoke_id: str, task: asyncio.Task[None]) -> None:
        if self._inflight.get(invoke_id) is task:
            del self._inflight[invoke_id]

    async def _run_invoke(
        self, client: GatewayClient, request: InvokeRequest, handler: Handler
    ) -> None:
        try:
            payload = await handler(decode_params(request.params_json), self._invocation(request))
        except CommandError as err:
            self._answer(client, request, error=err)
        except asyncio.CancelledError:
            return  # the gateway gave up on it (or the link went): nobody to answer
        except Exception:
            LOG.exception("%s failed (invoke %s)", request.command, request.id)
            self._answer(client, request, error=_FAILED)
        else:
            self._answer(client, request, payload=payload)

    def _answer(
        self,
        client: GatewayClient,
        request: InvokeRequest,
        *,
        payload: Any = None,
        error: CommandError | None = None,
    ) -> None:
        """Send ``node.invoke.result``; its acknowledgement is not waited for."""
        result: dict[str, Any] = {"id": request.id, "nodeId": request.node_id}
        if error is None:
            try:
                result["payloadJSON"] = _payload_encoder.encode(payload).decode()
                result["ok"] = True
            except Exception:  # a command's bug: answer now, or the gateway waits to timeout
                LOG.exception("%s returned a result that is not JSON", request.command)
                error = _UNENCODABLE
        if error is not None:
            if error is not _FAILED and error is not _UNENCODABLE:  # traceback logged already
                LOG.info(
                    "%s refused: %s %s",
                    log_text(request.command),
                    error.code,
                    log_text(error.message),  # may quote a requested path
                )
            result["ok"] = False
            result["error"] = {"code": error.code, "message": error.message}
        with contextlib.suppress(GatewayError):
            client.send_nowait("node.invoke.result", result)

    async def _cancel_inflight(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()


def _describe_refusal(err: GatewayCallFailed) -> str:
    details = err.details if isinstance(err.details, dict) else {}
    code = details.get("code")
    if code == "PAIRING_REQUIRED":
        request_id = details.get("requestId")
        hint = f" (request {request_id}: approve it with `openclaw devices approve`)"
        return "awaiting operator approval on the gateway" + (hint if request_id else "")
    return f"gateway refused the connect: {err}"
