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

import sys
from contextlib import contextmanager

import click

from ipvsctl import views
from ipvsctl.views import EXIT_BAD_INPUT, EXIT_KERNEL, EXIT_READ_FAILED, Failure, open_backend

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
# restore
# --------------------------------------------------------------------------


@cli.command("restore")
@click.argument("file", default="-", metavar="[FILE|-]")
@click.option("--json", "as_json", is_flag=True,
              help="FILE is a `list --json` / `-Ln --json` document (else ipvsadm -R lines).")
@click.option("--flush", is_flag=True,
              help="Clear the table first (as ipvsadm -C), in the same batch; if anything then "
                   "fails, the table is put back as it was.")
@click.option("--dry-run", is_flag=True,
              help="Check FILE, say what was checked and what was not; change nothing.")
@netns_option
def restore_command(file, as_json, flush, dry_run, netns):
    """Recreate services and real servers from FILE (default: standard input).

    The whole input is checked first, the scheduler and persistence-engine
    names against this kernel's modules included: a bad line or field stops
    the restore with nothing changed.  Then everything goes to the kernel
    in pipelined batches, and every request it refused is reported.  A
    restore that clears the table (--flush, or a -C line) is all or
    nothing: the table is read first and put back if any request fails.
    """
    from ipvsctl import stdio

    with _as_click_errors(), stdio.held():  # failing output stops neither the change nor the put-back
        return _restore(file, as_json, flush, dry_run, netns)


class _Input:
    """FILE or standard input, read a MiB at a time as UTF-8 (strict: a
    byte that is not is named by its offset); ``head`` is the first chunk."""

    def __init__(self, path: str):
        import codecs

        self.name = "standard input" if path == "-" else path
        try:
            if path == "-":
                self.file = getattr(sys.stdin, "buffer", None) or sys.stdin  # text in some tests
            else:
                self.file = open(path, "rb")
        except OSError as e:
            raise Failure(f"{self.name}: {e.strerror}", EXIT_BAD_INPUT) from None
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.offset = 0
        self.head = self._chunk()

    def _chunk(self) -> str:
        from ipvsctl.restore import READ_SIZE

        try:
            data = self.file.read(READ_SIZE)
        except OSError as e:
            raise Failure(f"{self.name}: {e.strerror}", EXIT_BAD_INPUT) from None
        if isinstance(data, str):
            return data
        held = len(self.decoder.getstate()[0])  # bytes of a character the last chunk cut
        try:
            text = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as e:
            raise Failure(f"{self.name}: not UTF-8 text ({e.reason} at byte "
                          f"{self.offset - held + e.start})", EXIT_BAD_INPUT) from None
        self.offset += len(data)
        return text

    def chunks(self):
        chunk = self.head
        while chunk:
            yield chunk
            chunk = self._chunk()

    def text(self) -> str:
        return "".join(self.chunks())

    def looks_like_json(self) -> bool:
        return self.head.lstrip()[:1] in ("{", "[")


def _restore(file, as_json, flush, dry_run, netns) -> int:
    """Checked whole, names included, then sent.  SIGINT and SIGTERM stop it
    at once while nothing is sent; then at the next window, with an account
    (and a restore that clears puts the table back)."""
    from ipvsctl.interrupt import Guard, Interrupted, signal_name

    with Guard() as guard:
        try:
            return _restore_guarded(file, as_json, flush, dry_run, netns, guard)
        except Interrupted as e:
            raise Failure(f"restore: interrupted by {signal_name(e.signum)} before anything was "
                          "sent: nothing was changed", 128 + e.signum) from None


def _restore_guarded(file, as_json, flush, dry_run, netns, guard) -> int:
    source = _Input(file)
    if as_json:
        job = _JsonJob(source.text(), flush)
    elif source.looks_like_json():
        raise Failure(f"restore: {source.name} holds a JSON document, not ipvsadm lines: "
                      "use `restore --json` (nothing was changed)", EXIT_BAD_INPUT)
    elif dry_run:
        from ipvsctl.restore import Tally

        job = _LinesJob(source, flush, Tally())
    else:
        # The lines are held encoded by the backend as they are checked.
        from ipvsctl.backend import batch_for

        with open_backend(netns) as backend:
            job = _LinesJob(source, flush, batch_for(backend))
            return _checked_and_sent(job, netns, guard, backend)
    if dry_run:
        report = _names(job)
        click.echo(_dry_run_report(job, report))
        return 0
    with open_backend(netns) as backend:
        return _checked_and_sent(job, netns, guard, backend)


def _names(job):
    """The scheduler and engine names checked: Failure if any is missing."""
    from ipvsctl import schedulers

    report = schedulers.check_services(job.located)
    if report.refused:
        for line in report.refusals():
            click.echo(f"restore: {line}", err=True)
        raise Failure("restore: nothing was changed", EXIT_BAD_INPUT)
    return report


def _checked_and_sent(job, netns, guard, backend) -> int:
    _names(job)
    snap = _snapshot(backend, job.changes_timeouts) if job.clears else None
    guard.defer()  # from here a signal stops the sending at the end of a window
    failed, summary = job.run(backend, guard)
    if not failed:
        return 0
    status = guard.status if guard.signum is not None else EXIT_KERNEL
    if snap is None:
        click.echo(summary, err=True)
        return status
    from ipvsctl import undo

    problems = undo.put_back(backend, snap)
    services, dests = snap.size
    if problems:
        click.echo(f"{summary}; putting the table back as it was FAILED for:", err=True)
        for p in problems[:20]:
            click.echo(f"restore:   {p}", err=True)
        if len(problems) > 20:
            click.echo(f"restore:   ... and {len(problems) - 20} more", err=True)
    else:
        click.echo(f"{summary}; the table was put back as it was ({services} services, "
                   f"{dests} real servers; counters start again from zero)", err=True)
    return status


class _LinesJob:
    """A restore of ipvsadm -R lines: every line parsed and checked at once,
    and held in ``batch`` (a backend's, or a Tally for a dry run)."""

    as_json = False

    def __init__(self, source: _Input, flush: bool, batch):
        from ipvsctl import backend as b
        from ipvsctl.restore import RestoreLineError, lines_of, plan

        try:
            self.plan = plan(lines_of(source.chunks()), batch, flush=flush)
        except RestoreLineError as e:
            what = "bad command line (Try `ipvsctl -h')" if e.error.try_help else e.error.message
            raise Failure(f"restore: line {e.line_no}: {what.rstrip()} (nothing was changed)",
                          e.error.exit_code) from None
        p = self.plan
        self.flush = flush
        self.clears = flush or p.has(b.OP_FLUSH)
        self.changes_timeouts = p.has(b.OP_SET_TIMEOUTS)
        self.located = [(f"line {n}", svc) for n, svc in p.located()]
        self.what = f"{p.commands} commands"

    def run(self, backend, guard=None) -> tuple[bool, str]:
        """(whether anything failed or stopped, the closing line)."""
        from ipvsctl.restore import apply

        result = apply(self.plan, backend, guard)
        sys.stdout.write("".join(result.out))
        sys.stderr.write("".join(result.err))
        account = result.account().rstrip("\n")
        if account:
            return True, account
        if not result.failed:
            return bool(result.status), "restore: clearing the table failed"
        if self.clears:
            return True, f"restore: {result.failures()}"
        return True, result.summary().rstrip("\n")


class _JsonJob:
    """A restore of a JSON document: every field checked at once."""

    as_json = True
    changes_timeouts = False

    def __init__(self, text: str, flush: bool):
        from ipvsctl import jsonrestore

        try:
            self.table = jsonrestore.loads(text)
        except jsonrestore.DocumentError as e:
            if not e.path and text.lstrip()[:1] == "-":
                raise Failure("restore: the input holds ipvsadm -R lines, not a JSON document: "
                              "leave out --json (nothing was changed)", EXIT_BAD_INPUT) from None
            raise Failure(f"restore: {e} (nothing was changed)", EXIT_BAD_INPUT) from None
        self.flush = self.clears = flush
        self.located = [(f"services[{i}]", svc) for i, (svc, _) in enumerate(self.table)]
        self.what = (f"{len(self.table)} services, "
                     f"{sum(len(d) for _, d in self.table)} real servers")

    def run(self, backend, guard=None) -> tuple[bool, str]:
        """(whether anything failed or stopped, the closing line)."""
        from ipvsctl import jsonrestore

        outcome = jsonrestore.apply(backend, self.table, self.flush, guard)
        for line in outcome.failures:
            click.echo(f"restore: {line}", err=True)
        account = outcome.account()
        if account:
            return True, account
        if not outcome.failures:
            return False, ""
        return True, f"restore: {outcome.failed()}" if self.clears else outcome.summary()


def _snapshot(backend, with_timeouts: bool):
    from ipvsctl import undo
    from ipvsctl.backend import KernelError

    try:
        return undo.take(backend, with_timeouts)
    except KernelError as e:
        f = _read_failure(e)
        raise Failure(f"restore: the table could not be read before clearing it ({f.message}); "
                      "nothing was changed", EXIT_READ_FAILED) from None


def _dry_run_report(job, report) -> str:
    """What a dry run checked, and, as plainly, what it could not."""
    names = []
    for kind, label in (("scheduler", "schedulers"), ("pe", "persistence engines")):
        if report.available[kind]:
            names.append(f"{label} {', '.join(report.available[kind])}")
    checked = ("every field, as restore --json reads it" if job.as_json else
               "every line's options and values, as ipvsadm checks them (names resolved)")
    lines = [f"restore: valid: {job.what} (dry run: nothing was changed)",
             f"  checked: {checked}"]
    if names:
        lines.append(f"  checked: this kernel has the {' and the '.join(names)} named")
    for message in report.unchecked:
        lines.append(f"  not checked: {message}")
    lines.append("  not checked: what the kernel decides about each change (a service or real "
                 "server that already exists or does not, an address it refuses, ...): only "
                 "the real run finds out, and reports every refusal")
    if job.clears:
        lines.append("  clears the table: if any change then fails, the table is put back as it was")
    return "\n".join(lines)


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
    except click.exceptions.Abort as e:  # click's for a KeyboardInterrupt (interrupt.Interrupted too)
        click.echo("interrupted", err=True)
        return 128 + getattr(e.__cause__, "signum", 2)
    except click.ClickException as e:
        if isinstance(e, ClickFailure):
            e.prog = prog
        e.show()
        return e.exit_code
    except Failure as e:  # raised by a command outside _as_click_errors
        click.echo(f"{prog}: {e.message}", err=True)
        return e.exit_code
    return rv if isinstance(rv, int) else 0


# Subcommands in packages of their own, registered last since they use the
# shared pieces above: the desired-state ones (diff, apply, drain) and the
# operating ones (ipvsctl/commands/: metrics, conns, doctor).
from ipvsctl.commands import register as _register  # noqa: E402
from ipvsctl.desired.commands import register as _register_desired  # noqa: E402

_register_desired(cli)
_register(cli)
