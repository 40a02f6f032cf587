"""The gateway's outbound HTTP client: bodies framed by the close are read to the end."""

from __future__ import annotations

import asyncio

import pytest

from openclaw_multi.gateway import http_client


def test_a_body_framed_by_the_close_is_read_to_eof_not_to_the_first_segment() -> None:
    async def main() -> http_client.HttpResponse:
        reader = asyncio.StreamReader()
        reader.feed_data(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"ok": ')
        task = asyncio.ensure_future(http_client._read_response(reader))
        await asyncio.sleep(0)  # one turn: the reader takes what has arrived so far
        reader.feed_data(b"true}")
        reader.feed_eof()
        return await task

    response = asyncio.run(main())
    assert response.status == 200
    assert response.body == b'{"ok": true}'


def test_a_body_framed_by_the_close_over_the_cap_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_client, "MAX_BODY_BYTES", 8)

    async def main() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"HTTP/1.1 200 OK\r\n\r\n12345")
        task = asyncio.ensure_future(http_client._read_response(reader))
        await asyncio.sleep(0)
        reader.feed_data(b"67890")
        reader.feed_eof()
        await task

    with pytest.raises(ValueError, match="cap"):
        asyncio.run(main())


def test_request_reads_a_close_delimited_answer_sent_in_two_writes() -> None:
    async def main() -> http_client.HttpResponse:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"result": ')
            await writer.drain()
            writer.write(b"[1, 2, 3]}")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await http_client.request(
                "POST", f"http://127.0.0.1:{port}/x", body=b"{}", timeout=10.0
            )
        finally:
            server.close()
            await server.wait_closed()

    response = asyncio.run(main())
    assert response.body == b'{"result": [1, 2, 3]}'


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("Bearer sk-\u201csecret\u201d", "header value is not Latin-1: Authorization"),
        ("Bearer sk-secret\r\nX-Evil: 1", "header value has a line break: Authorization"),
    ],
)
def test_a_header_that_cannot_be_sent_is_an_http_error_naming_only_the_header(
    value: str, problem: str
) -> None:
    # Refused before any connection: port 9 (discard) on loopback is never reached.
    with pytest.raises(http_client.HttpError) as caught:
        asyncio.run(
            http_client.request(
                "POST", "http://127.0.0.1:9/v1", body=b"{}", headers={"Authorization": value}
            )
        )
    assert str(caught.value) == problem
    assert "secret" not in str(caught.value)


def test_a_url_path_that_is_not_latin_1_is_an_http_error() -> None:
    with pytest.raises(http_client.HttpError, match="not Latin-1"):
        asyncio.run(http_client.request("GET", "http://127.0.0.1:9/\u2603"))
