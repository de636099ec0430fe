"""The subcommands ``ipvsctl diff``, ``apply`` and ``drain`` (click).

Strategy: thin.  Options in; the input checked whole before the kernel is
asked anything (a bad line, field or scope means exit 2, or ipvsadm's usage
status, and no change); then one backend, and the work done by the pure
plan, the renderers and the executor of this package.  Failures leave
through ``app.Failure`` like every other subcommand's.  docs/apply.md is the
user's description; the exit statuses are listed there.
"""

from __future__ import annotations

import sys

import click

from ipvsctl.app import EXIT_BAD_INPUT, Failure, netns_option, open_backend

EXIT_DIFFERS = 1


def register(group: click.Group) -> None:
    for command in (diff_command, apply_command, drain_command):
        group.add_command(command)


# --------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------


def _read_input(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:  # standard input closed (<&-) or unreadable, too
        name = "standard input" if path == "-" else path
        raise Failure(f"{name}: {e.strerror}", EXIT_BAD_INPUT) from None
    except UnicodeDecodeError as e:
        name = "standard input" if path == "-" else path
        raise Failure(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})", EXIT_BAD_INPUT) from None


def _desired(command: str, path: str, scopes):
    """The checked desired table and scope; Failure (nothing changed) if bad."""
    from ipvsctl.desired import source
    from ipvsctl.desired.plan import check_scope
    from ipvsctl.desired.scope import Scope, ScopeError

    try:
        scope = Scope.parse(scopes)
    except ScopeError as e:
        raise Failure(f"{command}: {e}", EXIT_BAD_INPUT) from None
    name = "standard input" if path == "-" else path
    try:
        desired = source.load(_read_input(path))
        check_scope(desired, scope, desired.origins)
    except source.InputError as e:
        raise Failure(f"{command}: {name}: {e.message} (nothing was changed)", e.exit_code) from None
    except ScopeError as e:
        raise Failure(f"{command}: {name}: {e} (nothing was changed)", EXIT_BAD_INPUT) from None
    return desired, scope


def _live(backend, command: str):
    from ipvsctl.backend import KernelError
    from ipvsctl.desired.plan import table_of
    from ipvsctl.errors import kernel_message

    try:
        return table_of(backend.table(counters=False))
    except KernelError as e:
        raise Failure(f"{command}: cannot read the table: {kernel_message(e.op or 'get_services', e.errno)}",
                      EXIT_BAD_INPUT) from None


def _sysctls(netns):
    from ipvsctl.desired import sysctls

    try:
        return sysctls.read(netns)
    except OSError:
        return None


def scope_options(f):
    f = click.option("--scope", "scopes", multiple=True, metavar="CIDR|fwmark:LO-HI",
                     help="Only services whose virtual address is in CIDR, or whose fwmark is in "
                          "LO-HI, may be touched (repeatable; default: all).")(f)
    f = click.option("--prune", is_flag=True,
                     help="Also remove the services in scope that FILE does not name.")(f)
    return f


def _show_plan(plan, fmt: str, sysctl_values) -> None:
    from ipvsctl.desired import render as R
    from ipvsctl.desired import sysctls as S

    out = sys.stdout
    if fmt == "rules":
        out.write(R.plan_rules(plan))
    elif fmt == "json":
        out.write(R.dumps(R.plan_doc(plan, S.doc(sysctl_values) if sysctl_values else None),
                          pretty=out.isatty()))
    else:
        out.write(R.plan_text(plan))
        if plan.leaving() and sysctl_values:
            out.write("".join(f"  {line}\n" for line in S.lines(sysctl_values)))


# --------------------------------------------------------------------------
# diff
# --------------------------------------------------------------------------


@click.command("diff")
@click.argument("file", default="-", metavar="[FILE|-]")
@scope_options
@click.option("--format", "fmt", type=click.Choice(["text", "rules", "json"]), default="text",
              show_default=True, help="text for people; rules: ipvsadm lines that converge the "
                                      "table (for ipvsadm -R); json: the plan document.")
@netns_option
def diff_command(file, prune, scopes, fmt, netns):
    """What apply would change to make the table match FILE.

    FILE (default: standard input) holds -A/-a lines as -S writes them, or a
    `list --json` document.  Exit status 0: in sync, 1: differences, 2: bad
    input, as diff(1).
    """
    from ipvsctl.desired.plan import plan

    desired, scope = _desired("diff", file, scopes)
    with open_backend(netns) as backend:
        live = _live(backend, "diff")
    p = plan(desired, live, scope, prune)
    _show_plan(p, fmt, _sysctls(netns) if fmt == "json" or p.leaving() else None)
    return 0 if p.in_sync else EXIT_DIFFERS


# --------------------------------------------------------------------------
# apply
# --------------------------------------------------------------------------


@click.command("apply")
@click.argument("file", default="-", metavar="[FILE|-]")
@scope_options
@click.option("--drain", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Drain real servers that leave (weight 0, wait for their connections, "
                   "all at once) for up to SECONDS before removing them.")
@click.option("--no-rollback", is_flag=True,
              help="Keep going past steps the kernel refuses (each is reported) instead of "
                   "undoing everything.")
@click.option("--dry-run", is_flag=True, help="Show the plan and change nothing (as diff).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: {changed, plan, applied, failed, rolled_back, drained, ...}.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              metavar="SECONDS", help="How often a drain looks at the connection counts.")
@netns_option
def apply_command(file, prune, scopes, drain, no_rollback, dry_run, fmt, interval, netns):
    """Make the table match FILE: only what differs changes, edited in place.

    Under a lock per network namespace: snapshot, one pipelined batch,
    rollback to the snapshot if the kernel refuses a step (or on SIGINT or
    SIGTERM), then the table is read back and checked.  Exit status 0: done
    (or nothing to do), 1: the table still differs, 2: bad input, 255: the
    kernel refused a step, 130/143: interrupted (rolled back).
    """
    desired, scope = _desired("apply", file, scopes)
    if dry_run:
        return _dry_run(desired, scope, prune, fmt, netns)
    from ipvsctl import stdio

    with stdio.held():  # output that fails stops neither the change nor its rollback
        return _apply(desired, scope, prune, drain, no_rollback, fmt, interval, netns)


def _apply(desired, scope, prune, drain, no_rollback, fmt, interval, netns):
    from ipvsctl.desired import render as R
    from ipvsctl.desired import apply as A
    from ipvsctl.desired import drain as D
    from ipvsctl.desired import sysctls as S
    from ipvsctl.desired.lock import LockError

    err = sys.stderr
    printed = [0]
    text = fmt == "text"
    values = _sysctls(netns) if drain is not None or not text else None

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
    with open_backend(netns) as backend:
        try:
            report = A.run(backend, desired, scope=scope, prune=prune, drain=drain,
                           rollback=not no_rollback, netns=netns, interval=interval,
                           progress=progress, on_wait=on_wait, on_drain_start=on_drain_start,
                           report=report)
        except LockError as e:
            raise Failure(f"apply: {e.strerror or e} (nothing was changed)", EXIT_BAD_INPUT) from None
    if progress is not None:
        progress.finish()
    report.sysctls = values
    if not text:
        sys.stdout.write(R.dumps(report.doc(), pretty=sys.stdout.isatty()))
        return report.status
    _report_text(report, flush_applied)
    return report.status


def _dry_run(desired, scope, prune, fmt, netns):
    from ipvsctl.desired import render as R
    from ipvsctl.desired import sysctls as S
    from ipvsctl.desired.plan import plan

    with open_backend(netns) as backend:
        live = _live(backend, "apply")
    p = plan(desired, live, scope, prune)
    if fmt == "json":
        values = _sysctls(netns)
        doc = {"changed": not p.in_sync, "dry_run": True,
               "plan": R.plan_doc(p, S.doc(values) if values else None),
               "applied": [], "failed": [], "rolled_back": False, "drained": []}
        sys.stdout.write(R.dumps(doc, pretty=sys.stdout.isatty()))
    else:
        _show_plan(p, "text", _sysctls(netns) if p.leaving() else None)
    return 0 if p.in_sync else EXIT_DIFFERS


def _report_text(report, flush_applied) -> None:
    import signal

    from ipvsctl.desired import drain as D
    from ipvsctl.desired import render as R

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
        err.write(f"apply: interrupted by {signal.Signals(report.interrupted).name}\n")
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
                from ipvsctl.desired.labels import service_label

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


# --------------------------------------------------------------------------
# drain
# --------------------------------------------------------------------------


@click.command("drain")
@click.option("-t", "--tcp-service", "tcp", metavar="HOST:PORT", help="The TCP service.")
@click.option("-u", "--udp-service", "udp", metavar="HOST:PORT", help="The UDP service.")
@click.option("--sctp-service", "sctp", metavar="HOST:PORT", help="The SCTP service.")
@click.option("-f", "--fwmark-service", "fwmark", metavar="MARK", help="The firewall-mark service.")
@click.option("-6", "--ipv6", is_flag=True, help="With -f: the IPv6 fwmark service.")
@click.option("-r", "--real-server", "server", required=True, metavar="SERVER[:PORT]",
              help="The real server to drain (its port defaults to the service's, as in ipvsadm).")
@click.option("--timeout", type=click.FloatRange(min=0), default=300.0, show_default=True,
              metavar="SECONDS", help="Give up after this long: the server stays at weight 0, exit 1.")
@click.option("--keep", is_flag=True, help="Keep the drained server at weight 0 instead of removing it.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              metavar="SECONDS", help="How often to look at the connection counts.")
@netns_option
def drain_command(tcp, udp, sctp, fwmark, ipv6, server, timeout, keep, interval, netns):
    """Set a real server's weight to 0, wait until it has no connections, remove it.

    Connections counted: active, inactive, and persistence templates.  Exit
    status 0: drained (removed, or kept with --keep), 1: timed out or the
    server changed under the drain (left at weight 0), 2: bad input or no
    such service or real server, 255: the kernel refused, 130/143: interrupted
    (left at weight 0).
    """
    from ipvsctl import stdio
    from ipvsctl.desired.drain_server import run

    key, dest = _drain_target(tcp, udp, sctp, fwmark, ipv6, server)
    with stdio.held(), open_backend(netns) as backend:
        return run(backend, key, dest, timeout=timeout, keep=keep, interval=interval, netns=netns,
                   sysctl_values=_sysctls(netns))


def _drain_target(tcp, udp, sctp, fwmark, ipv6, server):
    """(ServiceKey, Destination naming the server) as ipvsadm -d reads them."""
    from ipvsctl.grammar import ParseError, parse

    argv = ["-d"]
    given = [(s, v) for s, v in (("-t", tcp), ("-u", udp), ("--sctp-service", sctp), ("-f", fwmark))
             if v is not None]
    if len(given) != 1:
        raise click.UsageError("name the service with exactly one of -t, -u, --sctp-service, -f")
    argv += list(given[0])
    if ipv6:
        if fwmark is None:
            raise click.UsageError("-6/--ipv6 goes with -f/--fwmark-service")
        argv.append("-6")
    argv += ["-r", server]
    try:
        cmd = parse(argv)
    except ParseError as e:
        raise Failure(f"drain: {e.message.strip() or 'bad service or server address'}",
                      EXIT_BAD_INPUT) from None
    return cmd.service_key(), cmd.destination()
