"""The node host's link to its gateway: connect as a node, serve invokes, reconnect.

Theory of operation: :meth:`NodeHost.run` loops until asked to stop. Each turn connects as
``role:"node"`` (``client.id`` ``node-host``, mode ``node``, the device block signed with this
profile's node key, the declared ``caps``/``commands``), then serves the link until it drops:
every ``node.invoke.request`` becomes a task that dispatches the command and answers with
``node.invoke.result``; ``node.invoke.cancel`` cancels that task (a running ``system.run``
has its process group killed). A link silent for two tick intervals is dropped, as the
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

from ...errors import GatewayCallFailed, GatewayError
from ...protocol.frames import IncomingEvent
from ..gateway import GatewayClient
from ..identity import DeviceAuthStore, DeviceIdentity
from .commands import CommandError, Invocation, Registry, dispatch
from .rules import backoff_delay

__all__ = ["NodeHost", "NodeLink"]

LOG = logging.getLogger("openclaw.node")
RESULT_TIMEOUT_S: Final = 10.0
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
    ) -> None:
        self.link = link
        self.registry = registry
        self._invocation = invocation
        self.display_name = display_name
        self.path_env = path_env
        self.stopping = asyncio.Event()
        self.connects = 0
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._last_failure = ""

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
            client = await self._connect()
            if client is not None:
                started = time.monotonic()
                attempt = 0
                await self._serve(client)
                if self.stopping.is_set():
                    break
                if time.monotonic() - started >= STABLE_LINK_S:
                    attempt = 0
            delay = backoff_delay(attempt)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.stopping.wait()

    # -- connecting ------------------------------------------------------------------------
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
        except GatewayError as err:
            self._note_failure(str(err))
            return None
        self.connects += 1
        self._last_failure = ""
        LOG.info("connected to gateway at %s as node %s", link.url, link.identity.device_id)
        return client

    def _note_failure(self, text: str) -> None:
        # The same failure every backoff turn is logged once, not every few seconds.
        if text != self._last_failure:
            LOG.warning("%s (retrying)", text)
            self._last_failure = text

    # -- serving ---------------------------------------------------------------------------
    async def _serve(self, client: GatewayClient) -> None:
        idle_s = 2 * client.hello.policy.tick_interval_ms / 1000
        reader = asyncio.create_task(self._read_events(client, idle_s))
        closed = asyncio.create_task(client.wait_closed())
        stopping = asyncio.create_task(self.stopping.wait())
        try:
            await asyncio.wait({reader, closed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, closed, stopping):
                task.cancel()
            await asyncio.gather(reader, closed, stopping, return_exceptions=True)
            await self._cancel_inflight()
            if self.stopping.is_set():
                await client.close()
                LOG.info("stopped; link to %s closed", self.link.url)
            else:
                await client.close()  # at once if the link is already down
                reason = client.close_reason or "link lost"
                LOG.warning("disconnected from gateway at %s (%s)", self.link.url, reason)

    async def _read_events(self, client: GatewayClient, idle_s: float) -> None:
        events = client.events
        while True:
            try:
                async with asyncio.timeout(idle_s):
                    event = await events.get()
            except TimeoutError:
                LOG.warning("no tick from the gateway for %.0fs: dropping the link", idle_s)
                return
            self._on_event(client, event)

    def _on_event(self, client: GatewayClient, event: IncomingEvent) -> None:
        name = event.event
        if name == "node.invoke.request":
            try:
                request = _request_decoder.decode(event.payload)
            except msgspec.ValidationError as err:
                LOG.warning("invalid node.invoke.request ignored: %s", err)
                return
            task = asyncio.create_task(self._serve_invoke(client, request))
            self._inflight[request.id] = task
            task.add_done_callback(functools.partial(self._forget, request.id))
        elif name == "node.invoke.cancel":
            try:
                cancel = _cancel_decoder.decode(event.payload)
            except msgspec.ValidationError:
                return
            running = self._inflight.get(cancel.invoke_id)
            if running is not None:
                LOG.info("invoke %s cancelled by the gateway", cancel.invoke_id)
                running.cancel()

    def _forget(self, invoke_id: str, task: asyncio.Task[None]) -> None:
        if self._inflight.get(invoke_id) is task:
            del self._inflight[invoke_id]

    async def _serve_invoke(self, client: GatewayClient, request: InvokeRequest) -> None:
        invocation = self._invocation(request)
        result: dict[str, Any] = {"id": request.id, "nodeId": request.node_id}
        try:
            payload = await dispatch(self.registry, invocation, request.params_json)
        except CommandError as err:
            if request.command != "system.info":
                LOG.info("%s refused: %s %s", request.command, err.code, err.message)
            result["ok"] = False
            result["error"] = {"code": err.code, "message": err.message}
        except asyncio.CancelledError:
            return  # the gateway gave up on it (or the link went): nobody to answer
        except Exception:
            LOG.exception("%s failed (invoke %s)", request.command, request.id)
            result["ok"] = False
            result["error"] = {"code": "UNAVAILABLE", "message": "node invocation failed"}
        else:
            result["ok"] = True
            result["payloadJSON"] = _payload_encoder.encode(payload).decode()
        with contextlib.suppress(GatewayError):
            await client.call_raw("node.invoke.result", result, timeout=RESULT_TIMEOUT_S)

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
