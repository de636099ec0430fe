"""The click group of ipvsctl's subcommands, and how a subcommand line runs.

Strategy: imported only when the first word of a command line names a
subcommand (``ipvsctl.commands.SUBCOMMANDS``) and the line is not a plain
``list``/``watch`` line (those run through ``ipvsctl.views`` without
click), or when a shell asks for completions (``_IPVSCTL_COMPLETE`` is
set): the ipvsadm-compatible path never pays for click.  Every subcommand
module of this package adds its ``command``.
"""

from __future__ import annotations

import importlib
import sys

import click

from ipvsctl.commands import ALIASES, COMMANDS

COMPLETE_VAR = "_IPVSCTL_COMPLETE"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Failed(click.ClickException):
    """A command's session.Failure, as click reports it: ``PROG: message``."""

    def __init__(self, message: str, exit_code: int, prog: str):
        super().__init__(message)
        self.exit_code = exit_code
        self.prog = prog

    def show(self, file=None) -> None:
        click.echo(f"{self.prog}: {self.message}", err=True)


class Group(click.Group):
    """A click group with command aliases (``ls`` for ``list``), hidden from
    help, whose commands' Failures click reports (also in its standalone
    mode: completion, tests' CliRunner)."""

    def get_command(self, ctx, cmd_name):
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))

    def invoke(self, ctx):
        from ipvsctl.session import Failure

        try:
            return super().invoke(ctx)
        except Failure as e:
            raise Failed(e.message, e.exit_code, ctx.find_root().info_name or "ipvsctl") from None


@click.group(cls=Group, context_settings=CONTEXT)
def group() -> None:
    """ipvsctl's own views of the IPVS table.

    Any other first word is an ipvsadm command line (ipvsctl -Ln, -A, -R, ...).
    """


for _name in COMMANDS:
    group.add_command(importlib.import_module(f"ipvsctl.commands.{_name}").command)


def run_app(args: list[str], prog: str = "ipvsctl") -> int:
    """Run one subcommand line; return its exit status, click's errors and
    the faults that escape a command reported (session.report) on standard
    error.

    With ``_IPVSCTL_COMPLETE`` set, click answers the shell's completion
    request instead (and exits).
    """
    from ipvsctl import session

    try:
        rv = group.main(args=list(args), prog_name=prog, complete_var=COMPLETE_VAR,
                        standalone_mode=False)
    except click.exceptions.Abort as e:  # click's for a KeyboardInterrupt (interrupt.Interrupted too)
        return session.report(e.__cause__ or KeyboardInterrupt(), prog, sys.stderr)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except Exception as e:
        status = session.report(e, prog, sys.stderr)
        if status is None:
            raise
        return status
    return rv if isinstance(rv, int) else 0
