"""``ipvsctl restore``: ipvsadm -R lines or a JSON document, checked first.

The whole input is checked (lines or fields, and the scheduler and
persistence-engine names against this kernel's modules) before anything is
sent; then ipvsctl.restore (lines) or ipvsctl.jsonrestore (documents) sends
it in pipelined batches and reports every refusal, and a restore that
clears the table (--flush, or a -C line) puts it back as it was
(ipvsctl.undo) when anything fails.
"""

from __future__ import annotations

import sys

import click

from ipvsctl.commands.options import netns_option
from ipvsctl.session import Failure, opened, read_failure
from ipvsctl.vocab import EXIT_INVALID, EXIT_KERNEL, EXIT_READ_FAILED


def _read_input(path: str) -> str:
    name = "standard input" if path == "-" else path
    try:
        if path == "-":
            stream = getattr(sys.stdin, "buffer", None)
            return stream.read().decode("utf-8") if stream is not None else sys.stdin.read()
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise Failure(f"{name}: {e.strerror}", EXIT_INVALID) from None
    except UnicodeDecodeError as e:
        raise Failure(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})", EXIT_INVALID) from None


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
    return _restore(file, as_json, flush, dry_run, netns)


def _restore(file, as_json, flush, dry_run, netns) -> int:
    from ipvsctl import schedulers

    text = _read_input(file)
    job = _JsonJob(text, flush) if as_json else _LinesJob(text, file, flush)
    report = schedulers.check_services(job.located)
    if report.refused:
        for line in report.refusals():
            click.echo(f"restore: {line}", err=True)
        raise Failure("restore: nothing was changed", EXIT_INVALID)
    if dry_run:
        click.echo(_dry_run_report(job, report))
        return 0
    with opened(netns) as backend:
        snap = _snapshot(backend, job.changes_timeouts) if job.clears else None
        failed, summary = job.run(backend)
        if not failed:
            return 0
        if snap is None:
            click.echo(summary, err=True)
            return EXIT_KERNEL
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
    return EXIT_KERNEL


class _LinesJob:
    """A restore of ipvsadm -R lines: every line parsed and checked at once."""

    as_json = False

    def __init__(self, text: str, file: str, flush: bool):
        from ipvsctl import backend as b
        from ipvsctl.restore import RestoreLineError, plan

        if _looks_like_json(text):
            name = "standard input" if file == "-" else file
            raise Failure(f"restore: {name} holds a JSON document, not ipvsadm lines: "
                          "use `restore --json` (nothing was changed)", EXIT_INVALID)
        try:
            self.steps = plan(text.split("\n"))
        except RestoreLineError as e:
            what = "bad command line (Try `ipvsctl -h')" if e.error.try_help else e.error.message
            raise Failure(f"restore: line {e.line_no}: {what.rstrip()} (nothing was changed)",
                          e.error.exit_code) from None
        ops = [(n, s.op) for n, s in self.steps if isinstance(s, b.Request)]
        self.flush = flush
        self.clears = flush or any(op == b.OP_FLUSH for _, op in ops)
        self.changes_timeouts = any(op == b.OP_SET_TIMEOUTS for _, op in ops)
        self.located = [(f"line {n}", s.service) for n, s in self.steps
                        if isinstance(s, b.Request) and s.op in (b.OP_ADD_SERVICE, b.OP_EDIT_SERVICE)]
        self.what = f"{len(self.steps)} commands"

    def run(self, backend) -> tuple[bool, str]:
        from ipvsctl.restore import apply

        result = apply(self.steps, backend, flush=self.flush)
        sys.stdout.write("".join(result.out))
        sys.stderr.write("".join(result.err))
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

    def run(self, backend) -> tuple[bool, str]:
        from ipvsctl import jsonrestore

        outcome = jsonrestore.apply(backend, self.table, self.flush)
        for line in outcome.failures:
            click.echo(f"restore: {line}", err=True)
        if not outcome.failures:
            return False, ""
        return True, f"restore: {outcome.failed()}" if self.clears else outcome.summary()


def _looks_like_json(text: str) -> bool:
    return text.lstrip()[:1] in ("{", "[")


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
