"""Operator scopes and the rule for whether a granted set covers a required scope."""

from __future__ import annotations

from typing import Final

READ: Final = "operator.read"
WRITE: Final = "operator.write"
ADMIN: Final = "operator.admin"
APPROVALS: Final = "operator.approvals"
PAIRING: Final = "operator.pairing"
KNOWN: Final = frozenset({READ, WRITE, ADMIN, APPROVALS, PAIRING})


def covers(granted: frozenset[str], required: str | None) -> bool:
    """Whether ``granted`` allows a method that needs ``required`` (None: anyone may call).

    ``operator.admin`` covers every scope and ``operator.write`` implies ``operator.read``,
    as in the reference gateway.
    """
    if required is None or required in granted or ADMIN in granted:
        return True
    return required == READ and WRITE in granted


def grant(requested: list[str], *, probe: bool) -> frozenset[str]:
    """Scopes granted to a shared-secret client: what it asked for, if known; none to probes."""
    if probe:
        return frozenset()
    return frozenset(s for s in requested if s in KNOWN)
