"""The OpenClaw gateway wire protocol v4, with no I/O.

``frames`` holds the three frame types and the shared encoder/decoders, ``codes`` the error
and close codes, ``connect`` the handshake messages, ``handshake`` the decision of whether a
``connect`` is accepted, ``scopes`` which method needs which scope, and ``control`` the
supervisor's control-socket messages. Everything here is tested with plain values.
"""

PROTOCOL_VERSION = 4
"""The protocol this gateway speaks; 3 is also accepted from probe and node clients."""
