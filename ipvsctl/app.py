"""ipvsctl's own subcommands through click: ``list`` (``ls``), ``watch``,
``restore``, ``completion``, ``help`` (for completion and the man page:
ipvsctl.cli answers it without click); ``diff``, ``apply``, ``drain`` are
defined in ipvsctl.desired.commands, ``metrics``, ``conns``, ``doctor`` in
ipvsctl.commands.

Strategy: a click group, imported only when the first word of the command
line names one of these (``ipvsctl.cli.SUBCOMMANDS``) and the line is not a
plain ``list``/``watch`` line (those run through ``ipvsctl.views`` without
click), or when a shell asks for completions (``_IPVSCTL_COMPLETE`` is set):
the ipvsadm-compatible path never pays for click.  The options of ``list``
and ``watch`` are declared once, as data, in ipvsctl.views, and turned into
click options here (``with_options``).  Each command is a thin layer:
options in, one Backend (``ipvsctl.cli.open_backend``, so tests patch one
place), a pure renderer out (render.table for people, render.json for
programs, watch for the live view, jsonrestore for reading documents back).
All failures leave as ``views.Failure`` (``ClickFailure`` inside click):
one line ``PROG: message`` on stderr and the exit status (1: a read failed,
2: bad input or no such namespace, 255: the kernel refused a change, as
ipvsadm).  See docs/usage-views.md.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import click

from ipvsctl import views
from ipvsctl.views import EXIT_INVALID, EXIT_KERNEL, EXIT_READ_FAILED, Failure, open_backend  # noqa: F401 (commands)

COMPLETE_VAR = "_IPVSCTL_COMPLETE"
ALIASES = {"ls": "list"}
_read_failure = views.read_failure


class ClickFailure(click.ClickException):
    """A views.Failure inside click: printed as ``PROG: message``, then exit."""

    def __init__(self, message: str, exit_code: int = EXIT_READ_FAILED):
        super().__init__(message)
        self.exit_code = exit_code
        self.prog = "ipvsctl"

    def show(self, file=None) -> None:
        click.echo(f"{self.prog}: {self.message}", err=True)


@contextmanager
def _as_click_errors():
    """The views' own errors, as click reports errors."""
    try:
        yield
    except Failure as e:
        raise ClickFailure(e.message, e.exit_code) from None
    except views.Usage as e:
        if e.hint:
            raise click.BadParameter(e.message, param_hint=e.hint) from None
        raise click.UsageError(e.message) from None


class Group(click.Group):
    """A click group with command aliases (``ls`` for ``list``), hidden from help."""

    def get_command(self, ctx, cmd_name):
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=Group, context_settings=CONTEXT)
def cli() -> None:
    """ipvsctl's own views of the IPVS table.

    Any other first word is an ipvsadm command line (ipvsctl -Ln, -A, -R, ...).
    """


# --------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------


def _click_option(opt: views.Opt):
    """The click option of a views.Opt."""
    kwargs = {"help": opt.help}
    if opt.metavar:
        kwargs["metavar"] = opt.metavar
    if opt.kind == "flag":
        kwargs["is_flag"] = True
    elif opt.kind == "int":
        kwargs["type"] = click.IntRange(min=opt.minimum)
    elif opt.kind == "float":
        kwargs["type"] = click.FloatRange(min=opt.minimum)
    elif opt.kind == "choice":
        kwargs["type"] = click.Choice(list(opt.choices), case_sensitive=False)
    if opt.default not in (None, False):
        kwargs["default"] = opt.default
        kwargs["show_default"] = opt.show_default
    if opt.dest == "numeric":
        kwargs["expose_value"] = False
    return click.option(*opt.flags, opt.dest, **kwargs)


def with_options(options):
    """Decorate a command with the click options of ``options`` (views.Opt)."""

    def decorate(f):
        for opt in reversed(options):
            f = _click_option(opt)(f)
        return f

    return decorate


netns_option = with_options(views.NETNS)


# --------------------------------------------------------------------------
# list
# --------------------------------------------------------------------------


@cli.command("list")
@with_options(views.LIST_OPTIONS)
def list_command(**params):
    """Virtual services and their real servers, as tables (alias: ls).

    A weight-0 real server is marked "draining", a service without real
    servers "no real servers".  Addresses are always numeric.
    """
    with _as_click_errors():
        return views.run_list(**params)


# --------------------------------------------------------------------------
# watch
# --------------------------------------------------------------------------


def _misread_numeric(ctx, param, value):
    # watch(1) users write "-n 2" for the interval; ipvsadm's -n is --numeric.
    if value not in (None, ""):
        raise click.BadParameter(
            "-n takes no value here: as in ipvsadm it means --numeric (and addresses are always "
            "numeric). The time between frames is --interval SECONDS, the number of frames "
            "--iterations N.", param_hint="'-n'")
    return value is not None


def _misread_ipip(ctx, param, value):
    if value is not None:
        raise click.BadParameter(
            "watch has no -i (ipvsadm's -i means ipip): the time between frames is "
            "--interval SECONDS.", param_hint="'-i'")
    return value


@cli.command("watch")
@with_options(tuple(o for o in views.WATCH_OPTIONS if o.dest != "numeric"))
@click.option("-n", "--numeric", is_flag=False, flag_value="", default=None, metavar="",
              callback=_misread_numeric, expose_value=False, help=views.NUMERIC.help)
@click.option("-i", hidden=True, callback=_misread_ipip, expose_value=False)
def watch_command(**params):
    """Live connection and byte rates per service and real server.

    The kernel's rate estimates (as ipvsadm -Ln --rate), busiest first (new
    connections per second, then bytes per second), redrawn in place every
    interval until Ctrl-C.  Off a terminal, or with --once / --iterations,
    each frame is printed after the last.  On a terminal only what fits the
    screen is shown, the busiest first.
    """
    with _as_click_errors():
        return views.run_watch(**params)


# --------------------------------------------------------------------------
# completion
# --------------------------------------------------------------------------


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_command(shell):
    """Print the shell completion script for SHELL.

    \b
    bash:  eval "$(ipvsctl completion bash)"      (e.g. in ~/.bashrc)
    zsh:   eval "$(ipvsctl completion zsh)"       (in ~/.zshrc)
    fish:  ipvsctl completion fish > ~/.config/fish/completions/ipvsctl.fish
    """
    from click.shell_completion import get_completion_class

    ctx = click.get_current_context()
    prog = ctx.find_root().info_name
    comp = get_completion_class(shell)(cli, {}, prog, COMPLETE_VAR)
    click.echo(comp.source())
    return 0


# --------------------------------------------------------------------------
# help
# --------------------------------------------------------------------------


def _subcommand_names():
    from ipvsctl.cli import SUBCOMMANDS

    return sorted(SUBCOMMANDS)


@cli.command("help")
@click.argument("subcommand", required=False, type=click.Choice(_subcommand_names()),
                metavar="[SUBCOMMAND]")
def help_command(subcommand):
    """Print the text of -h: the ipvsadm-style commands and options, and the
    subcommands.  With SUBCOMMAND, print that subcommand's usage and
    options, as SUBCOMMAND --help does.
    """
    # ipvsctl.cli answers `help` itself, without click (-h's text must not
    # wait for it); this command is here for completion and the man page.
    from ipvsctl.cli import _help

    ctx = click.get_current_context()
    return _help(["help", *([subcommand] if subcommand else [])], ctx.find_root().info_name)


# --------------------------------------------------------------------------
# Entry point (from ipvsctl.cli.main)
# --------------------------------------------------------------------------


def run_app(args: list[str], prog: str = "ipvsctl") -> int:
    """Run one subcommand line; return its exit status.

    With ``_IPVSCTL_COMPLETE`` set, click answers the shell's completion
    request instead (and exits).
    """
    try:
        rv = cli.main(args=list(args), prog_name=prog, complete_var=COMPLETE_VAR,
                      standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return 130
    except click.ClickException as e:
        if isinstance(e, ClickFailure):
            e.prog = prog
        e.show()
        return e.exit_code
    except Failure as e:  # raised by a command outside _as_click_errors
        click.echo(f"{prog}: {e.message}", err=True)
        return e.exit_code
    except BrokenPipeError:
        # `ipvsctl list | head`: the reader left; say nothing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return rv if isinstance(rv, int) else 0


# Subcommands in packages of their own, registered last since they use the
# shared pieces above: the desired-state ones (diff, apply, drain) and the
# operating ones (ipvsctl/commands/: metrics, conns, doctor).
from ipvsctl.commands import register as _register  # noqa: E402
from ipvsctl.desired.commands import register as _register_desired  # noqa: E402

_register_desired(cli)
_register(cli)
