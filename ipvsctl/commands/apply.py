"""``ipvsctl apply``: make the table match a file, in place (logic:
ipvsctl.desired.apply; docs/apply.md)."""

from __future__ import annotations

import sys

import click

from ipvsctl.commands.desired_io import desired_table, live_table, scope_options, show_plan, sysctl_values
from ipvsctl.commands.options import Seconds, netns_option
from ipvsctl.render.json import dumps
from ipvsctl.session import Failure, opened
from ipvsctl.vocab import EXIT_DIFFERS, EXIT_INVALID, EXIT_SIGNALLED


@click.command("apply")
@click.argument("file", default="-", metavar="[FILE|-]")
@scope_options
@click.option("--drain", type=Seconds(min=0), metavar="SECONDS",
              help="Drain real servers that leave (weight 0, wait for their connections, "
                   "all at once) for up to SECONDS before removing them.")
@click.option("--no-rollback", is_flag=True,
              help="Keep going past steps the kernel refuses (each is reported) instead of "
                   "undoing everything.")
@click.option("--dry-run", is_flag=True, help="Show the plan and change nothing (as diff).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: {changed, plan, applied, failed, rolled_back, drained, ...}.")
@click.option("--interval", type=Seconds(min=0.05), default=1.0, show_default=True,
              metavar="SECONDS", help="How often a drain looks at the connection counts.")
@netns_option
def command(file, prune, scopes, drain, no_rollback, dry_run, fmt, interval, netns):
    """Make the table match FILE: only what differs changes, edited in place.

    Under a lock per network namespace: snapshot, one pipelined batch,
    rollback to the snapshot if the kernel refuses a step (or on SIGINT or
    SIGTERM), then the table is read back and checked.  Exit status 0: done
    (or nothing to do), 1: the table still differs, 2: bad input, 255: the
    kernel refused a step, 130/143: interrupted (rolled back).
    """
    from ipvsctl import stdio
    from ipvsctl.interrupt import Guard, Interrupted, signal_name

    # One guard from the reading of FILE to the last line of the report.
    # Until the plan is sent a signal stops at once: nothing was changed.
    # From then on it is noted, and apply (ipvsctl.desired.apply) stops at
    # the next window and rolls back; one that comes after the last request
    # finds the work done and the report is still written in full.  (With
    # the report written outside the guard, a SIGINT there said only
    # "interrupted", status 130, and a SIGTERM killed the process silently:
    # both statuses say "rolled back", for a table that was changed.)
    with Guard(ends_quietly=True) as guard:
        try:
            desired, scope = desired_table("apply", file, scopes, prune)
            if guard.signum is not None:  # raised inside an import, and swallowed there
                raise Interrupted(guard.signum)
        except Interrupted as e:
            raise Failure(f"apply: interrupted by {signal_name(e.signum)} before anything was "
                          "sent: nothing was changed", EXIT_SIGNALLED + e.signum) from None
        if dry_run:
            return _dry_run(desired, scope, prune, fmt, netns)
        guard.defer()
        with stdio.held():  # output that fails stops neither the change nor its rollback
            return _apply(desired, scope, prune, drain, no_rollback, fmt, interval, netns, guard)


def _apply(desired, scope, prune, drain, no_rollback, fmt, interval, netns, guard):
    from ipvsctl.desired import render as R
    from ipvsctl.desired import apply as A
    from ipvsctl.desired import drain as D
    from ipvsctl.desired import sysctls as S
    from ipvsctl.desired.lock import LockError

    err = sys.stderr
    printed = [0]
    text = fmt == "text"
    values = sysctl_values(netns) if drain is not None or not text else None

    def on_wait(pid):
        err.write(f"apply: waiting for the apply that holds the lock (pid {pid})\n")
        err.flush()

    def flush_applied(report):
        if text:
            for step in report.applied[printed[0]:]:
                sys.stdout.write(R.step_line(step) + "\n")
            printed[0] = len(report.applied)
            sys.stdout.flush()

    report_box = []

    def on_drain_start(drains):
        flush_applied(report_box[0])
        if text and drains:
            sys.stdout.write(f"draining {len(drains)} real server{'s' if len(drains) != 1 else ''} "
                             f"for up to {drain:g} s:\n")
            if values:
                sys.stdout.write("".join(f"  {line}\n" for line in S.lines(values)))
            sys.stdout.flush()

    progress = D.Progress(err) if text else None
    report = A.Report()
    report_box.append(report)
    with opened(netns) as backend:
        try:
            report = A.run(backend, desired, scope=scope, prune=prune, drain=drain,
                           rollback=not no_rollback, netns=netns, interval=interval,
                           progress=progress, on_wait=on_wait, on_drain_start=on_drain_start,
                           report=report, guard=guard)
        except LockError as e:
            raise Failure(f"apply: {e.strerror or e} (nothing was changed)", EXIT_INVALID) from None
    if progress is not None:
        progress.finish()
    report.sysctls = values
    if not text:
        sys.stdout.write(dumps(report.doc(), pretty=sys.stdout.isatty()))
        return report.status
    _report_text(report, flush_applied)
    return report.status


def _dry_run(desired, scope, prune, fmt, netns):
    from ipvsctl.desired.plan import plan

    with opened(netns) as backend:
        live = live_table(backend, "apply")
    p = plan(desired, live, scope, prune)
    if fmt == "json":
        # The real run's report, with every key (a program reads one shape),
        # of a run that sent nothing.
        from ipvsctl.desired.apply import Report

        report = Report()
        report.plan, report.dry_run, report.sysctls = p, True, sysctl_values(netns)
        sys.stdout.write(dumps(report.doc(), pretty=sys.stdout.isatty()))
    else:
        show_plan(p, "text", sysctl_values(netns) if p.leaving() else None)
    return 0 if p.in_sync else EXIT_DIFFERS


def _report_text(report, flush_applied) -> None:
    from ipvsctl.desired import drain as D
    from ipvsctl.desired import render as R
    from ipvsctl.interrupt import signal_name

    out, err = sys.stdout, sys.stderr
    plan = report.plan
    if plan is None:
        err.write("apply: interrupted while waiting for the lock: nothing was changed\n")
        return
    if plan.in_sync:
        out.write("no changes\n")
        return
    if not report.rolled_back:
        flush_applied(report)
    for dr in report.drained:
        if dr.state == D.DRAINED:
            out.write(f"drained {dr.label} in {dr.seconds:.0f} s\n")
        elif dr.state == D.TIMED_OUT:
            out.write(f"drain timed out: {dr.label} still had {dr.counts_text()}: removed anyway\n")
        elif dr.state == D.GONE:
            out.write(f"{dr.label} left the table while draining (removed by someone else)\n")
        elif dr.state == D.REWEIGHTED:
            out.write(f"{dr.label} was given a weight by someone else while draining; removed as planned\n")
    shown = report.failed[:20]
    for step, message in shown:
        err.write(f"apply: refused: {R.step_rule(step)}: {message}\n")
    if len(report.failed) > len(shown):
        err.write(f"apply: ... and {len(report.failed) - len(shown)} more refused\n")
    if report.interrupted is not None:
        err.write(f"apply: interrupted by {signal_name(report.interrupted)}\n")
    if report.rolled_back:
        n = len(report.applied) + len(report.uncertain)
        if report.rollback_complete:
            err.write(f"apply: rolled back: {n} change{'s' if n != 1 else ''} undone, "
                      "the table is as it was\n")
        else:
            err.write("apply: ROLLBACK INCOMPLETE: the table is neither as it was nor as desired\n")
            for step, message in report.rollback_failed[:20]:
                err.write(f"apply: rollback refused: {R.step_rule(step)}: {message}\n")
            if report.rollback_problems is not None and not report.rollback_problems.in_sync:
                err.write("apply: what differs from the snapshot:\n" + R.plan_text(report.rollback_problems))
            for key in report.rollback_leftovers:
                from ipvsctl.labels import service_label

                err.write(f"apply: {service_label(key)} is still there\n")
        for dr in report.left_at_zero:
            err.write(f"apply: left at weight 0 (it was draining): {dr.label}, {dr.counts_text()}\n")
        return
    if report.failed:
        err.write(f"apply: {len(report.failed)} refused, {len(report.applied)} applied "
                  "(--no-rollback)\n")
    if report.verify_plan is not None and not report.verify_plan.in_sync:
        err.write("apply: the table read back still differs from the file:\n"
                  + R.plan_text(report.verify_plan))
        return
    if not report.failed:
        out.write(f"applied {len(report.applied)} change{'s' if len(report.applied) != 1 else ''} "
                  f"({R.counts_text(plan)}); verified\n")
