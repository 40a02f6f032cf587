"""TLS certificate pinning, with no I/O: fingerprints, pinned client contexts, a memory-BIO session.

A gateway with ``gateway.tls`` usually serves a self-signed certificate, so clients do not
verify a chain; they *pin* the certificate instead: the SHA-256 of its DER bytes must equal
the fingerprint the person configured (``--tls-fingerprint`` or
``gateway.remote.tlsFingerprint``). The reference client does the same
(``normalizeTlsFingerprint``): it accepts ``AA:BB:...`` or plain hex, any case, with an
optional ``sha256:`` prefix.

:func:`pinned_client_context` checks the pin *inside* the TLS handshake (its SSLObject class
compares the peer certificate as soon as the handshake completes), so a mismatch fails the
handshake itself: not one byte of HTTP, let alone a credential, reaches the wrong server.
:class:`TlsClientSession` drives such a context over memory BIOs (bytes in, bytes out), for
the bare-socket HTTP probes.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import Final

__all__ = [
    "TlsClientSession",
    "TlsPinMismatch",
    "certificate_fingerprint",
    "format_fingerprint",
    "normalize_fingerprint",
    "pinned_client_context",
    "tls_exchange",
]

_HEX: Final = re.compile(r"^[0-9a-fA-F]{64}$")
_COLON: Final = re.compile(r"^(?:[0-9a-fA-F]{2}:){31}[0-9a-fA-F]{2}$")
_READ_CHUNK: Final = 64 * 1024


def normalize_fingerprint(text: str | None) -> str | None:
    """A SHA-256 fingerprint as 64 lowercase hex digits, or None if ``text`` is not one.

    Accepts ``AA:BB:...`` (32 colon-separated pairs) or 64 hex digits, in any case, with an
    optional ``sha256:`` prefix and surrounding whitespace.
    """
    value = (text or "").strip()
    if value[:7].lower() == "sha256:":
        value = value[7:]
    if _HEX.match(value):
        return value.lower()
    if _COLON.match(value):
        return value.replace(":", "").lower()
    return None


def format_fingerprint(fingerprint: str) -> str:
    """``AA:BB:...``: the form people compare by eye (and OpenSSL/Node print)."""
    value = normalize_fingerprint(fingerprint) or fingerprint
    return ":".join(value[i : i + 2] for i in range(0, len(value), 2)).upper()


def certificate_fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, as normalized hex."""
    return hashlib.sha256(der).hexdigest()


class TlsPinMismatch(ssl.SSLCertVerificationError):
    """The peer's certificate is not the pinned one (raised during the TLS handshake).

    Attributes:
        expected: The pinned fingerprint (normalized hex).
        got: The peer's fingerprint (normalized hex), or None if it sent no certificate.
    """

    def __init__(self, expected: str, got: str | None) -> None:
        shown = format_fingerprint(got) if got else "no certificate"
        super().__init__(
            f"TLS fingerprint mismatch: expected {format_fingerprint(expected)}, got {shown}"
        )
        self.expected = expected
        self.got = got

    def __str__(self) -> str:
        return str(self.args[0])


class _PinnedSSLObject(ssl.SSLObject):
    """An SSLObject whose handshake also checks the peer certificate against the pin."""

    def do_handshake(self) -> None:
        super().do_handshake()
        expected = getattr(self.context, "pinned_fingerprint", None)
        if expected is None:
            return
        der = self.getpeercert(binary_form=True)
        got = certificate_fingerprint(der) if der else None
        if got != expected:
            raise TlsPinMismatch(expected, got)


class _PinnedContext(ssl.SSLContext):
    pinned_fingerprint: str | None = None


def pinned_client_context(fingerprint: str | None) -> ssl.SSLContext:
    """A client context that trusts exactly one certificate, by fingerprint.

    The chain and host name are not verified (a pinned self-signed certificate has neither);
    the handshake fails with :class:`TlsPinMismatch` unless the peer's certificate has this
    SHA-256. With ``fingerprint`` None it accepts any certificate: only for loopback probes
    that merely ask "do you answer?" and send nothing secret.

    Raises:
        ValueError: ``fingerprint`` is not a SHA-256 fingerprint.
    """
    expected = None
    if fingerprint is not None:
        expected = normalize_fingerprint(fingerprint)
        if expected is None:
            raise ValueError("a TLS fingerprint is the SHA-256 of the certificate: 64 hex digits")
    context = _PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.pinned_fingerprint = expected
    context.sslobject_class = _PinnedSSLObject
    return context


class TlsClientSession:
    """A client TLS connection over memory BIOs: feed it bytes, send what it gives back.

    Usage (the caller owns the socket)::

        session = TlsClientSession(pinned_client_context(pin))
        while not session.do_handshake():
            send(session.data_to_send()); session.receive_data(recv())
        send(session.data_to_send())
        session.write(request); send(session.data_to_send())
        ... session.receive_data(recv()); session.read() ...
    """

    def __init__(self, context: ssl.SSLContext, server_hostname: str | None = None) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=False, server_hostname=server_hostname
        )

    def do_handshake(self) -> bool:
        """Advance the handshake: True once complete, False when it needs more bytes.

        Raises:
            TlsPinMismatch: The peer's certificate is not the pinned one.
            ssl.SSLError: The handshake failed.
        """
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def data_to_send(self) -> bytes:
        """Encrypted bytes to write to the socket (possibly empty)."""
        return self._outgoing.read()

    def receive_data(self, data: bytes) -> None:
        """Bytes read from the socket; ``b""`` means the peer closed it."""
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    def write(self, plaintext: bytes) -> None:
        """Queue application bytes (then send :meth:`data_to_send`)."""
        self._tls.write(plaintext)

    def read(self) -> bytes | None:
        """Decrypted bytes; ``b""`` at the end of the stream, None when more input is needed."""
        try:
            return self._tls.read(_READ_CHUNK)
        except ssl.SSLWantReadError:
            return None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""

    def peer_fingerprint(self) -> str | None:
        """The SHA-256 of the peer's certificate, once the handshake is done."""
        der = self._tls.getpeercert(binary_form=True)
        return certificate_fingerprint(der) if der else None


async def tls_exchange(
    session: TlsClientSession,
    send: Callable[[bytes], Awaitable[None]],
    recv: Callable[[int], Awaitable[bytes]],
    request: bytes,
    *,
    limit: int,
    until: Callable[[bytes], bool] | None = None,
) -> bytes:
    """Handshake, send ``request``, and read the answer to EOF (or ``until`` it is enough).

    The caller supplies the socket I/O (``send`` all bytes, ``recv`` at most n, ``b""`` at
    EOF) and owns the socket; this only moves bytes through the session.

    Args:
        session: A fresh client session.
        send: Writes all of the given bytes.
        recv: Reads at most n bytes (``b""`` when the peer closed).
        request: The plaintext to send once the handshake is done.
        limit: Stop reading after more than this many plaintext bytes.
        until: Stop as soon as the plaintext read so far satisfies it.

    Returns:
        The plaintext answer (possibly over ``limit`` by one chunk: the caller checks).

    Raises:
        TlsPinMismatch, ssl.SSLError: The handshake failed.
        ConnectionError: The peer closed during the handshake.
    """
    while not session.do_handshake():
        outgoing = session.data_to_send()
        if outgoing:
            await send(outgoing)
        data = await recv(_READ_CHUNK)
        if not data:
            raise ConnectionResetError("connection closed during the TLS handshake")
        session.receive_data(data)
    session.write(request)
    await send(session.data_to_send())
    answer = bytearray()
    while len(answer) <= limit and not (until is not None and until(bytes(answer))):
        chunk = session.read()
        if chunk is None:
            outgoing = session.data_to_send()
            if outgoing:
                await send(outgoing)
            session.receive_data(await recv(_READ_CHUNK))
            continue
        if not chunk:
            break
        answer += chunk
    return bytes(answer)
