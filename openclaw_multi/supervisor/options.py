"""The supervisor's options: restart policy numbers from flags, then environment, then defaults.

Every :class:`~openclaw_multi.supervisor.policy.RestartPolicy` field, plus the probe timeout,
can be set as ``--<field-with-dashes> VALUE`` or ``OPENCLAW_SUPERVISOR_<FIELD>=VALUE``
(e.g. ``--probe-interval 0.2`` or ``OPENCLAW_SUPERVISOR_PROBE_INTERVAL=0.2``). A flag beats
the environment. A value that does not parse is an error, never silently ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from openclaw_multi.errors import ConfigError

from .policy import RestartPolicy

__all__ = ["ENV_PREFIX", "POLICY_KNOBS", "SupervisorOptions", "parse_options"]

ENV_PREFIX: Final = "OPENCLAW_SUPERVISOR_"

POLICY_KNOBS: Final[dict[str, type]] = {
    "backoff_initial": float,
    "backoff_max": float,
    "backoff_factor": float,
    "stable_after": float,
    "burst_limit": int,
    "burst_window": float,
    "ready_timeout": float,
    "stop_timeout": float,
    "probe_interval": float,
    "probe_failures_before_restart": int,
}
"""RestartPolicy fields settable by flag/env (``PROBE_FAILURES`` is the short env name)."""

_ENV_NAMES: Final = {
    name: ENV_PREFIX
    + ("PROBE_FAILURES" if name == "probe_failures_before_restart" else name.upper())
    for name in POLICY_KNOBS
}


@dataclass(frozen=True)
class SupervisorOptions:
    """How this supervisor runs.

    Attributes:
        foreground: Stay attached to the terminal (log to stderr too) instead of detaching.
        stop_gateways: On SIGTERM/SIGINT, stop the gateways before exiting (default: leave
            them serving).
        policy: Restart, readiness, stop and probe numbers.
        probe_timeout: Seconds a health probe may take.
    """

    foreground: bool = False
    stop_gateways: bool = False
    policy: RestartPolicy = dataclasses.field(default_factory=RestartPolicy)
    probe_timeout: float = 1.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m openclaw_multi.supervisor",
        description="Run the openclaw-multi supervisor of this user's home.",
    )
    parser.add_argument(
        "--foreground", action="store_true", help="do not detach; log to stderr as well"
    )
    parser.add_argument(
        "--stop-gateways",
        action="store_true",
        help="on SIGTERM/SIGINT stop the gateways too (default: they keep serving)",
    )
    for name in POLICY_KNOBS:
        parser.add_argument(
            "--" + name.replace("_", "-"), dest=name, metavar="N", help=f"env {_ENV_NAMES[name]}"
        )
    parser.add_argument("--probe-timeout", metavar="S", help=f"env {ENV_PREFIX}PROBE_TIMEOUT")
    return parser


def _number(name: str, raw: str, kind: type) -> float | int:
    try:
        value: float | int = int(raw) if kind is int else float(raw)
    except ValueError:
        raise ConfigError(f"supervisor option {name}: not a number: {raw!r}") from None
    return value


def parse_options(argv: Sequence[str], env: Mapping[str, str]) -> SupervisorOptions:
    """Parse the command line and ``OPENCLAW_SUPERVISOR_*`` variables.

    Raises:
        ConfigError: A number does not parse, or the policy is inconsistent.
        SystemExit: Bad usage (argparse prints it).
    """
    args = _parser().parse_args(list(argv))
    values: dict[str, float | int] = {}
    for name, kind in POLICY_KNOBS.items():
        raw = getattr(args, name) or env.get(_ENV_NAMES[name]) or None
        if raw is not None:
            values[name] = _number(name, raw, kind)
    raw_timeout = args.probe_timeout or env.get(ENV_PREFIX + "PROBE_TIMEOUT") or None
    probe_timeout = 1.0
    if raw_timeout is not None:
        probe_timeout = float(_number("probe_timeout", raw_timeout, float))
        if not probe_timeout > 0:
            raise ConfigError(f"supervisor option probe_timeout must be > 0, got {raw_timeout}")
    return SupervisorOptions(
        foreground=args.foreground,
        stop_gateways=args.stop_gateways,
        policy=RestartPolicy(**values),  # type: ignore[arg-type]
        probe_timeout=probe_timeout,
    )
