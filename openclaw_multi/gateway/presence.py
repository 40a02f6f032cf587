"""Presence entries: who is connected to this gateway, as ``system-presence`` lists them."""

from __future__ import annotations

import msgspec


class PresenceEntry(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """One row of ``system-presence``: a connected client, or the gateway itself."""

    instance_id: str
    mode: str
    reason: str
    ts: int
    host: str | None = None
    ip: str | None = None
    version: str | None = None
    platform: str | None = None
    device_family: str | None = None
    model_identifier: str | None = None
    client_id: str | None = None
    display_name: str | None = None
    roles: list[str] = []
    scopes: list[str] = []
