"""``ipvsctl help [SUBCOMMAND]``, for completion and the man page: ipvsctl.cli
answers ``help`` itself, without click (-h's text must not wait for it)."""

from __future__ import annotations

import click

from ipvsctl.commands import SUBCOMMANDS


@click.command("help")
@click.argument("subcommand", required=False, type=click.Choice(sorted(SUBCOMMANDS)),
                metavar="[SUBCOMMAND]")
def command(subcommand):
    """Print the text of -h: the ipvsadm-style commands and options, and the
    subcommands.  With SUBCOMMAND, print that subcommand's usage and
    options, as SUBCOMMAND --help does.
    """
    from ipvsctl.help import answer

    return answer(subcommand, click.get_current_context().find_root().info_name)
