"""``ipvsctl completion SHELL``: the shell completion script (click's)."""

from __future__ import annotations

import click


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def command(shell):
    """Print the shell completion script for SHELL.

    \b
    bash:  eval "$(ipvsctl completion bash)"      (e.g. in ~/.bashrc)
    zsh:   eval "$(ipvsctl completion zsh)"       (in ~/.zshrc)
    fish:  ipvsctl completion fish > ~/.config/fish/completions/ipvsctl.fish
    """
    from click.shell_completion import get_completion_class

    from ipvsctl.commands.group import COMPLETE_VAR, group

    ctx = click.get_current_context()
    prog = ctx.find_root().info_name
    comp = get_completion_class(shell)(group, {}, prog, COMPLETE_VAR)
    click.echo(comp.source())
    return 0
