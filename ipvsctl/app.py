"""ipvsctl's own subcommands: ``list`` (``ls``), ``watch``, ``restore``, ``completion``
(and ``diff``, ``apply``, ``drain``, defined in ipvsctl.desired.commands).

Strategy: a click group, imported only when the first word of the command
line names one of these (``ipvsctl.cli.SUBCOMMANDS``) or when a shell asks
for completions (``_IPVSCTL_COMPLETE`` is set): the ipvsadm-compatible path
never pays for click or rich.  Each command is a thin layer: options in,
one Backend (``ipvsctl.cli.open_backend``, so tests patch one place), a
pure renderer out (render.table for people, render.json for programs,
watch for the live view, jsonrestore for reading documents back).  All
failures leave through ``Failure``: one line ``PROG: message`` on stderr
and the exit status (1: a read failed, 2: bad input or no such namespace,
255: the kernel refused a change, as ipvsadm).  See docs/usage-views.md.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import click

COMPLETE_VAR = "_IPVSCTL_COMPLETE"
ALIASES = {"ls": "list"}
EXIT_READ_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_KERNEL = 255


class Failure(click.ClickException):
    """An error for the user: printed as ``PROG: message``, then exit."""

    def __init__(self, message: str, exit_code: int = EXIT_READ_FAILED):
        super().__init__(message)
        self.exit_code = exit_code

        self.prog = "ipvsctl"

    def show(self, file=None) -> None:
        click.echo(f"{self.prog}: {self.message}", err=True)


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


def netns_option(f):
    return click.option("--netns", metavar="NAME",
                        help="Work on the IPVS table of network namespace NAME "
                             "(as in `ip netns`; or a path to a namespace file).")(f)


def output_options(f):
    f = click.option("--width", type=click.IntRange(min=20), metavar="N",
                     help="Lay the table out for N columns (default: the terminal's, else 80).")(f)
    f = click.option("--no-color", is_flag=True,
                     help="No colours (also without a terminal, or with NO_COLOR set).")(f)
    return f


def selection_options(f):
    """ipvsadm's service options, plus --protocol and --address filters."""
    opts = [
        click.option("-t", "--tcp-service", "tcp", metavar="HOST:PORT", help="Only this TCP service."),
        click.option("-u", "--udp-service", "udp", metavar="HOST:PORT", help="Only this UDP service."),
        click.option("--sctp-service", "sctp", metavar="HOST:PORT", help="Only this SCTP service."),
        click.option("-f", "--fwmark-service", "fwmark", metavar="MARK",
                     help="Only this firewall-mark service."),
        click.option("-6", "--ipv6", is_flag=True, help="With -f: the IPv6 fwmark service."),
        click.option("--protocol", type=click.Choice(["tcp", "udp", "sctp", "fwmark"],
                                                     case_sensitive=False),
                     help="Only services of this protocol (fwmark: firewall-mark services)."),
        click.option("--address", metavar="ADDR",
                     help="Only services with this virtual address (all their real servers) "
                          "or with this real server (only the matching real servers)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _selected_key(tcp, udp, sctp, fwmark, ipv6):
    """The ServiceKey named by -t/-u/--sctp-service/-f [-6], parsed as ipvsadm does."""
    from ipvsctl.grammar import ParseError, parse

    argv = ["-L"]
    for spelling, value in (("-t", tcp), ("-u", udp), ("--sctp-service", sctp), ("-f", fwmark)):
        if value is not None:
            argv += [spelling, value]
    if ipv6:
        if fwmark is None:
            raise click.UsageError("-6/--ipv6 goes with -f/--fwmark-service")
        argv.append("-6")
    if len(argv) == 1:
        return None
    try:
        return parse(argv).service_key()
    except ParseError as e:
        raise click.UsageError(e.message.strip() or "bad service address") from None


def _address_filter(address):
    if address is None:
        return None
    from ipvsctl.render.table import normalize_address

    try:
        return normalize_address(address)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--address'") from None


@contextmanager
def open_backend(netns: str | None):
    """The backend (in ``netns``), closed afterwards; errors become Failures."""
    from ipvsctl import cli as compat
    from ipvsctl.backend import KernelError
    from ipvsctl.errors import ipvs_unavailable, netns_open_error

    try:
        backend = compat.open_backend(netns)
    except OSError as e:
        raise Failure(netns_open_error(netns, e), EXIT_BAD_INPUT) from None
    except KernelError as e:
        raise Failure(ipvs_unavailable(e.errno), EXIT_BAD_INPUT) from None
    try:
        yield backend
    finally:
        backend.close()


def _read_failure(e) -> Failure:
    from ipvsctl import backend as b
    from ipvsctl.errors import kernel_message

    return Failure(kernel_message(e.op or b.OP_GET_SERVICES, e.errno), EXIT_READ_FAILED)


def read_selected(backend, key, protocol, address):
    """The table in ipvsadm's order, filtered; Failure when a read fails."""
    from ipvsctl.backend import KernelError
    from ipvsctl.render.json import read_table
    from ipvsctl.render.table import filter_table

    try:
        table = read_table(backend, key)
    except KernelError as e:
        raise _read_failure(e) from None
    return filter_table(table, protocol=protocol.lower() if protocol else None, address=address)


def _console(width, no_color):
    from ipvsctl.render.table import make_console

    return make_console(sys.stdout, width=width, color=False if no_color else None)


# --------------------------------------------------------------------------
# list
# --------------------------------------------------------------------------


@cli.command("list")
@selection_options
@click.option("--stats", is_flag=True, help="Add the counters: connections, packets, bytes.")
@click.option("--rate", is_flag=True, help="Add the rates: connections, packets, bytes per second.")
@click.option("-X", "--exact", is_flag=True, help="Counters with every digit, not 1.2 M.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON document for programs (schema: docs/json.md).")
@output_options
@netns_option
def list_command(tcp, udp, sctp, fwmark, ipv6, protocol, address, stats, rate, exact, as_json,
                 width, no_color, netns):
    """Virtual services and their real servers, as tables (alias: ls).

    A weight-0 real server is marked "draining", a service without real
    servers "no real servers".  Addresses are always numeric.
    """
    from ipvsctl.backend import KernelError

    key = _selected_key(tcp, udp, sctp, fwmark, ipv6)
    address = _address_filter(address)
    with open_backend(netns) as backend:
        info = None
        if as_json:
            try:
                info = backend.info()
            except KernelError as e:
                raise _read_failure(e) from None
        table = read_selected(backend, key, protocol, address)
    if as_json:
        from ipvsctl.render.json import dumps, table_doc

        out = sys.stdout
        out.write(dumps(table_doc(info, table), pretty=out.isatty()))
        return 0
    from ipvsctl.render.table import list_view

    _console(width, no_color).print(list_view(table, stats=stats, rate=rate, exact=exact))
    return 0


# --------------------------------------------------------------------------
# watch
# --------------------------------------------------------------------------


@cli.command("watch")
@selection_options
@click.option("-i", "--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              metavar="SECONDS", help="Time between two frames (the kernel updates its rate "
                                      "estimates every 2 s).")
@click.option("--once", is_flag=True, help="Show one frame, then exit.")
@click.option("-n", "--iterations", type=click.IntRange(min=1), metavar="N",
              help="Show N frames, then exit.")
@output_options
@netns_option
def watch_command(tcp, udp, sctp, fwmark, ipv6, protocol, address, interval, once, iterations,
                  width, no_color, netns):
    """Live connection and byte rates per service and real server.

    The kernel's rate estimates (as ipvsadm -Ln --rate), busiest first (new
    connections per second, then bytes per second), redrawn in place every
    interval until Ctrl-C.  Off a terminal, or with --once / --iterations,
    each frame is printed after the last.
    """
    from ipvsctl import watch

    key = _selected_key(tcp, udp, sctp, fwmark, ipv6)
    address = _address_filter(address)
    if once:
        iterations = 1
    console = _console(width, no_color)
    title = f"netns {netns}: " if netns else ""
    with open_backend(netns) as backend:
        watch.run(lambda: read_selected(backend, key, protocol, address), console,
                  interval=interval, iterations=iterations, title=title)
    return 0


# --------------------------------------------------------------------------
# restore
# --------------------------------------------------------------------------


def _read_input(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise Failure(f"{path}: {e.strerror}", EXIT_BAD_INPUT) from None
    except UnicodeDecodeError as e:
        raise Failure(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})", EXIT_BAD_INPUT) from None


@cli.command("restore")
@click.argument("file", default="-", metavar="[FILE|-]")
@click.option("--json", "as_json", is_flag=True,
              help="FILE is a `list --json` / `-Ln --json` document (else ipvsadm -R lines).")
@click.option("--flush", is_flag=True, help="Clear the table first (as ipvsadm -C), in the same batch.")
@click.option("--dry-run", is_flag=True, help="Check FILE and say what it holds; change nothing.")
@netns_option
def restore_command(file, as_json, flush, dry_run, netns):
    """Recreate services and real servers from FILE (default: standard input).

    The whole input is checked first: a bad field (named by its path, e.g.
    services[2].destinations[0].weight) stops the restore with nothing
    changed.  Then everything goes to the kernel in one pipelined batch, and
    every request it refused is reported.
    """
    text = _read_input(file)
    if not as_json:
        return _restore_lines(text, flush, dry_run, netns)
    from ipvsctl import jsonrestore

    try:
        table = jsonrestore.loads(text)
    except jsonrestore.DocumentError as e:
        raise Failure(f"restore: {e} (nothing was changed)", EXIT_BAD_INPUT) from None
    n_dests = sum(len(d) for _, d in table)
    if dry_run:
        click.echo(f"restore: valid: {len(table)} services, {n_dests} real servers "
                   "(dry run: nothing was changed)")
        return 0
    with open_backend(netns) as backend:
        outcome = jsonrestore.apply(backend, table, flush)
    for line in outcome.failures:
        click.echo(f"restore: {line}", err=True)
    if outcome.failures:
        total = len(table) + n_dests + (1 if flush else 0)
        click.echo(f"restore: {len(outcome.failures)} of {total} requests failed; "
                   "every other one was applied", err=True)
        return EXIT_KERNEL
    return 0


def _restore_lines(text: str, flush: bool, dry_run: bool, netns: str | None) -> int:
    """ipvsadm -R input: the compat path's restore, with --flush and --dry-run."""
    from ipvsctl.cli import run_compat

    if flush:
        text = "-C\n" + text
    if dry_run:
        from ipvsctl.restore import RestoreLineError, plan

        try:
            steps = plan(text.split("\n"))
        except RestoreLineError as e:
            what = "bad command line" if e.error.try_help else e.error.message
            raise Failure(f"restore: line {e.line_no}: {what} (nothing was changed)",
                          EXIT_BAD_INPUT) from None
        click.echo(f"restore: valid: {len(steps)} commands (dry run: nothing was changed)")
        return 0
    import io

    ctx = click.get_current_context()
    argv = ["-R"] + (["--netns", netns] if netns else [])
    return run_compat(argv, io.StringIO(text), sys.stdout, sys.stderr, ctx.find_root().info_name)


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
        if isinstance(e, Failure):
            e.prog = prog
        e.show()
        return e.exit_code
    except BrokenPipeError:
        # `ipvsctl list | head`: the reader left; say nothing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return rv if isinstance(rv, int) else 0


# The desired-state subcommands (diff, apply, drain) live in their own package.
from ipvsctl.desired.commands import register as _register_desired  # noqa: E402

_register_desired(cli)
