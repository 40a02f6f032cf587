"""The ``openclaw`` command: the root group, global options, and the one error-to-exit map.

Exit codes (documented in docs/cli.md):
    0   success
    1   the gateway or supervisor could not be reached, refused, or answered an error
    2   bad usage (unknown flag, invalid profile name or port, conflicting options)
    78  configuration or conflict: bad config, profile locked, port taken (EX_CONFIG)
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from .. import __version__
from ..errors import ConfigError, OpenClawError, ProfileConflictError, UsageError
from .completion_cmds import complete_profile_names
from .context import CliContext
from .output import terminal_safe

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78


def exit_code_for(err: OpenClawError) -> int:
    """The one place an error class becomes an exit code."""
    if isinstance(err, UsageError):
        return EXIT_USAGE
    if isinstance(err, ConfigError | ProfileConflictError):
        return EXIT_CONFIG
    return EXIT_FAILURE


class OpenClawGroup(click.Group):
    """A group whose commands turn :class:`OpenClawError` into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OpenClawError as err:
            fail(str(err), exit_code_for(err))


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` to stderr (one line, no control characters: messages often
    carry a gateway's or a model endpoint's words) and exit with ``code``."""
    click.echo(f"error: {terminal_safe(message, one_line=True)}", err=True)
    sys.exit(code)


@click.group(cls=OpenClawGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--profile",
    "profile_flag",
    metavar="NAME",
    help="Profile to act on.",
    shell_complete=complete_profile_names,
)
@click.option("--dev", is_flag=True, help="Use the dev profile (port 19001).")
@click.version_option(__version__, "--version", prog_name="openclaw-multi")
@click.pass_context
def cli(ctx: click.Context, profile_flag: str | None, dev: bool) -> None:
    """Run and manage isolated OpenClaw gateways, one per profile."""
    ctx.obj = CliContext(profile_flag=profile_flag, dev=dev)


def _register() -> None:
    from . import (
        agent_cmds,
        completion_cmds,
        dashboard_cmds,
        devices_cmds,
        doctor_cmds,
        gateway_cmds,
        node_cmds,
        nodes_cmds,
        profiles_cmds,
        remote_cmds,
        security_cmds,
        services_cmds,
        supervisor_cmds,
        tunnel_cmds,
    )

    cli.add_command(gateway_cmds.gateway)
    gateway_cmds.gateway.add_command(agent_cmds.agent)
    cli.add_command(gateway_cmds.health)
    cli.add_command(profiles_cmds.profiles)
    cli.add_command(supervisor_cmds.supervisor)
    profiles_cmds.profiles.add_command(services_cmds.profiles_install)
    profiles_cmds.profiles.add_command(services_cmds.profiles_uninstall)
    supervisor_cmds.supervisor.add_command(services_cmds.supervisor_install)
    supervisor_cmds.supervisor.add_command(services_cmds.supervisor_uninstall)
    cli.add_command(doctor_cmds.doctor)
    cli.add_command(completion_cmds.completion)
    cli.add_command(devices_cmds.devices)
    cli.add_command(remote_cmds.remote)
    cli.add_command(security_cmds.security)
    cli.add_command(tunnel_cmds.tunnel)
    cli.add_command(nodes_cmds.nodes)
    cli.add_command(node_cmds.node)
    cli.add_command(dashboard_cmds.dashboard)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="openclaw", standalone_mode=True)
    except OpenClawError as err:  # raised outside a command's invoke (e.g. option callbacks)
        fail(str(err), exit_code_for(err))


if __name__ == "__main__":
    main()
