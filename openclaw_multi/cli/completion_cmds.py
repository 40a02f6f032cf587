"""``openclaw completion bash|zsh|fish``, and completion of profile names.

The scripts are click's own (``click.shell_completion``): they call ``openclaw`` back with
``_OPENCLAW_COMPLETE=<shell>_complete`` set, and click answers from the command tree, so
new commands and options complete without regenerating anything. Profile names (``NAME``
arguments, ``--profile``) are listed from the state dirs under the home.
"""

from __future__ import annotations

import os

import click
from click.shell_completion import CompletionItem, get_completion_class

from ..errors import OpenClawError
from ..profiles.discovery import list_profiles
from ..profiles.paths import resolve_paths

__all__ = ["SHELLS", "complete_profile_names", "completion"]

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_OPENCLAW_COMPLETE"


def complete_profile_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Profile names under the home (``OPENCLAW_HOME``, else ``HOME``) that start with
    ``incomplete``."""
    try:
        home = resolve_paths(None, os.environ, explicit=False).home
    except OpenClawError:
        return []
    names = [p.display_name for p in list_profiles(home)]
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    bash: eval "$(openclaw completion bash)"     (in ~/.bashrc)
    zsh:  eval "$(openclaw completion zsh)"      (in ~/.zshrc)
    fish: openclaw completion fish > ~/.config/fish/completions/openclaw.fish
    """
    cls = get_completion_class(shell)
    assert cls is not None, "click ships bash, zsh and fish"
    root = ctx.find_root()
    script = cls(root.command, {}, root.info_name or "openclaw", COMPLETE_VAR).source()
    click.echo(script.rstrip("\n"))
