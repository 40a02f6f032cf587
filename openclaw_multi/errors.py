"""One root exception for everything openclaw-multi raises on purpose.

The tree::

    OpenClawError
    ├── UsageError                    bad input from a person: a name, a port, a flag mix
    ├── ConfigError                   a config file that cannot be read or makes no sense
    ├── ProfileConflictError          "do not restart me": lock held, port taken, overlap
    │   ├── LockHeldError
    │   └── PortInUseError
    ├── GatewayError                  talking to a gateway failed
    │   ├── GatewayUnreachable        no answer (refused, timed out, closed early)
    │   ├── GatewayCallFailed         the gateway answered ok:false (carries the wire error)
    │   ├── GatewayProtocolError      the gateway sent a frame we cannot decode
    │   ├── GatewayTlsError           its certificate is not the pinned one, or not trusted
    │   └── CredentialsRequired       --url given without explicit credentials
    └── SupervisorError               talking to or running the supervisor failed

Exit codes are not decided here: ``cli/`` maps each class to one, in one place.
"""

from __future__ import annotations

from typing import Any


class OpenClawError(Exception):
    """Root of every deliberate error. ``str(err)`` is a one-line message for a person."""


class UsageError(OpenClawError):
    """A person gave input we cannot use (profile name, port, conflicting flags)."""


class ConfigError(OpenClawError):
    """A config file is unreadable, malformed, or describes something we refuse to run."""


class ProfileConflictError(OpenClawError):
    """Another process owns what this profile needs; restarting will not help (exit 78)."""


class LockHeldError(ProfileConflictError):
    """Another live gateway holds this profile's lock."""


class PortInUseError(ProfileConflictError):
    """The profile's port is taken by another process."""


class GatewayError(OpenClawError):
    """Talking to a gateway failed."""


class GatewayUnreachable(GatewayError):
    """The gateway could not be reached or closed the connection before answering."""


class GatewayCallFailed(GatewayError):
    """The gateway answered a request with ``ok:false``."""

    def __init__(
        self,
        code: str,
        message: str,
        details: Any = None,
        close_code: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details
        self.close_code = close_code


class GatewayProtocolError(GatewayError):
    """The gateway sent something that is not a frame of the protocol (the link is closed)."""


class GatewayTlsError(GatewayError):
    """The gateway's TLS certificate is not the pinned one, or (unpinned) not trusted.

    Raised before any credential is sent: the pin is checked inside the TLS handshake.
    """


class CredentialsRequired(GatewayError):
    """``--url`` was given without ``--token``/``--password``.

    Config and environment secrets belong to a profile's own gateway; sending them to an
    arbitrary URL would leak them, so an override must bring its own credentials.
    """


class SupervisorError(OpenClawError):
    """The supervisor could not be reached, started, or refused a command."""
