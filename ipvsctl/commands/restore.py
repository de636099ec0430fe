"""``ipvsctl restore``: ipvsadm -R lines or a JSON document, checked first.

The whole input is checked (lines or fields, and the scheduler and
persistence-engine names against this kernel's modules) before anything is
sent; then ipvsctl.restore (lines) or ipvsctl.jsonrestore (documents) sends
it in pipelined batches and reports every refusal, and a restore that
clears the table (--flush, or a -C line) puts it back as it was
(ipvsctl.undo) when anything fails.

Lines are read a MiB at a time (``_Input``) and held encoded by the
backend as they are checked (restore.Plan), so a million lines cost ~200
MB, not the text and an object per line.  --dry-run does the same, into a
batch that is never sent, and then checks the names.  SIGINT and SIGTERM
(interrupt.Guard) end the restore at once while nothing is sent; once
sending has begun they stop it at the end of a window, with an account of
which lines were sent, and a restore that clears puts the table back.
Output that fails (stdio.held) stops neither the change nor the put-back.
"""

from __future__ import annotations

import sys

import click

from ipvsctl.commands.options import netns_option
from ipvsctl.session import Failure, opened, read_failure
from ipvsctl.vocab import EXIT_INVALID, EXIT_KERNEL, EXIT_OK, EXIT_READ_FAILED, EXIT_SIGNALLED


@click.command("restore")
@click.argument("file", default="-", metavar="[FILE|-]")
@click.option("--json", "as_json", is_flag=True,
              help="FILE is a `list --json` / `-Ln --json` document (else ipvsadm -R lines).")
@click.option("--flush", is_flag=True,
              help="Clear the table first (as ipvsadm -C), in the same batch; if anything then "
                   "fails, the table is put back as it was.")
@click.option("--dry-run", is_flag=True,
              help="Check FILE, say what was checked and what was not; change nothing.")
@netns_option
def command(file, as_json, flush, dry_run, netns):
    """Recreate services and real servers from FILE (default: standard input).

    The whole input is checked first, the scheduler and persistence-engine
    names against this kernel's modules included: a bad line or field stops
    the restore with nothing changed.  Then everything goes to the kernel
    in pipelined batches, and every request it refused is reported.  A
    restore that clears the table (--flush, or a -C line) is all or
    nothing: the table is read first and put back if any request fails.
    """
    from ipvsctl import stdio

    with stdio.held():  # failing output stops neither the change nor the put-back
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
            raise Failure(f"{self.name}: {e.strerror}", EXIT_INVALID) from None
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.offset = 0
        self.head = self._chunk()

    def _chunk(self) -> str:
        from ipvsctl.restore import READ_SIZE

        try:
            data = self.file.read(READ_SIZE)
        except OSError as e:
            raise Failure(f"{self.name}: {e.strerror}", EXIT_INVALID) from None
        if isinstance(data, str):
            return data
        held = len(self.decoder.getstate()[0])  # bytes of a character the last chunk cut
        try:
            text = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as e:
            raise Failure(f"{self.name}: not UTF-8 text ({e.reason} at byte "
                          f"{self.offset - held + e.start})", EXIT_INVALID) from None
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
        """Does the input open a JSON document (an object, or an array of
        objects)?  Not any "[": a rules file that starts with "[" is refused
        by the line it is on, not as JSON."""
        head = self.head.lstrip()
        if head[:1] == "{":
            return True
        return head[:1] == "[" and head[1:].lstrip()[:1] in ("{", "]")

    def blank(self) -> bool:
        """Whether the whole input is empty or white space (read on, into
        ``head``, only while it is)."""
        while not self.head.strip():
            more = self._chunk()
            if not more:
                return True
            self.head += more
        return False


def _restore(file, as_json, flush, dry_run, netns) -> int:
    """Checked whole, names included, then sent.  SIGINT and SIGTERM stop it
    at once while nothing is sent; then at the next window, with an account
    (and a restore that clears puts the table back)."""
    import codecs  # noqa: F401 (for _Input)

    from ipvsctl import restore, schedulers  # noqa: F401 (what checking the input uses)
    from ipvsctl.interrupt import Guard, Interrupted, signal_name

    if dry_run:
        from ipvsctl.netlink import backend  # noqa: F401 (the dry run's batch)
    # Imported before the Guard: a signal raised inside an import (importlib's
    # lock callbacks) is printed as "Exception ignored" and swallowed.
    with Guard(ends_quietly=True) as guard:
        try:
            return _restore_guarded(file, as_json, flush, dry_run, netns, guard)
        except Interrupted as e:
            raise Failure(f"restore: interrupted by {signal_name(e.signum)} before anything was "
                          "sent: nothing was changed", EXIT_SIGNALLED + e.signum) from None


def _restore_guarded(file, as_json, flush, dry_run, netns, guard) -> int:
    source = _Input(file)
    if flush and source.blank():
        # A file that came out empty (a failed render, a wrong path piped
        # through cat, stdin from /dev/null) would clear the live table and
        # call it a success.  Clearing on purpose is -C.
        raise Failure(f"restore: {source.name} is empty: with --flush that would only clear the "
                      "table (nothing was changed); `ipvsctl -C` clears it", EXIT_INVALID)
    if as_json:
        job = _JsonJob(source.text(), flush)
    elif source.looks_like_json():
        raise Failure(f"restore: {source.name} holds a JSON document, not ipvsadm lines: "
                      "use `restore --json` (nothing was changed)", EXIT_INVALID)
    elif dry_run:
        # Every step of -R but the sending: encoded as the netlink backend
        # would, and held so, as -R holds it.
        from ipvsctl.netlink.backend import EncodedBatch

        job = _LinesJob(source, flush, EncodedBatch.unsent())
    else:
        # The lines are held encoded by the backend as they are checked.
        from ipvsctl.backend import batch_for

        with opened(netns) as backend:
            job = _LinesJob(source, flush, batch_for(backend))
            return _checked_and_sent(job, netns, guard, backend)
    if dry_run:
        report = _names(job)
        click.echo(_dry_run_report(job, report))
        return EXIT_OK
    with opened(netns) as backend:
        return _checked_and_sent(job, netns, guard, backend)


def _names(job):
    """The scheduler and engine names checked: Failure if any is missing."""
    from ipvsctl import schedulers

    report = schedulers.check_services(job.located)
    if report.refused:
        for line in report.refusals():
            click.echo(f"restore: {line}", err=True)
        raise Failure("restore: nothing was changed", EXIT_INVALID)
    return report


def _checked_and_sent(job, netns, guard, backend) -> int:
    _names(job)
    snap = _snapshot(backend, job.changes_timeouts) if job.clears else None
    guard.defer()  # from here a signal stops the sending at the end of a window
    failed, summary = job.run(backend, guard)
    if not failed:
        return EXIT_OK
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
    and held in ``batch`` (a backend's; a dry run's encoded, never sent)."""

    as_json = False

    def __init__(self, source: _Input, flush: bool, batch):
        from ipvsctl import backend as b
        from ipvsctl.restore import RestoreLineError, plan_chunks

        try:
            self.plan = plan_chunks(source.chunks(), batch, flush=flush)
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
                              "leave out --json (nothing was changed)", EXIT_INVALID) from None
            raise Failure(f"restore: {e} (nothing was changed)", EXIT_INVALID) from None
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
        f = read_failure(e)
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
