"""What every command shares: the :class:`CliContext` in ``ctx.obj`` and the profile flags.

``--profile``/``--dev`` are accepted before the command (``openclaw --profile work gateway
run``, as OpenClaw spells it) and after it (``openclaw gateway run --profile work``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from ..profiles.paths import select_profile
from .completion_cmds import complete_profile_names

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliContext:
    """What every command can read from ``ctx.obj``."""

    profile_flag: str | None = None
    dev: bool = False
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def profile(self) -> tuple[str | None, bool]:
        """The selected profile name (None: default) and whether it was chosen explicitly."""
        return select_profile(self.profile_flag, self.dev, self.env)


def _record_profile(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is None or value is False:
        return
    obj = ctx.find_object(CliContext)
    assert obj is not None, "the root group creates the CliContext"
    if param.name == "dev":
        obj.dev = True
    else:
        obj.profile_flag = value


def profile_options(func: F) -> F:
    """Add ``--profile NAME`` and ``--dev`` to a subcommand (they set ``ctx.obj``)."""
    func = click.option(
        "--dev",
        is_flag=True,
        expose_value=False,
        callback=_record_profile,
        help="Use the dev profile (port 19001).",
    )(func)
    return click.option(
        "--profile",
        metavar="NAME",
        expose_value=False,
        callback=_record_profile,
        shell_complete=complete_profile_names,
        help="Profile to act on (also accepted before the command).",
    )(func)
