"""A bare WebSocket echo server: the floor the gateway is measured against.

Usage: python scripts/bench_echo_server.py {picows|websockets} PORT
Prints "ready" once listening; echoes every text message back; exits on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import uvloop


async def serve_picows(port: int) -> None:
    from picows import WSListener, WSMsgType, ws_create_server

    class Echo(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport, frame) -> None:  # type: ignore[no-untyped-def]
            if frame.msg_type is WSMsgType.TEXT:
                transport.send(WSMsgType.TEXT, frame.get_payload_as_bytes())
            elif frame.msg_type is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    server = await ws_create_server(lambda _req: Echo(), "127.0.0.1", port)
    await _run_until_term(server)


async def serve_websockets(port: int) -> None:
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    async def echo(ws) -> None:  # type: ignore[no-untyped-def]
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:  # clients of the benchmark just drop the link
            pass

    async with serve(echo, "127.0.0.1", port, compression=None, ping_interval=None) as server:
        await _run_until_term(server)


async def _run_until_term(server: object) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()


if __name__ == "__main__":
    lib, port = sys.argv[1], int(sys.argv[2])
    uvloop.run(serve_picows(port) if lib == "picows" else serve_websockets(port))
