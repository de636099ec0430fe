"""What diff, apply and drain share: the desired table read from a file, the
live table, the sysctls that change what a drain means, the scope options,
and a plan shown.  Each turns a bad input into a Failure that says nothing
was changed (exit status 2, or ipvsadm's for a line that is no command)."""

from __future__ import annotations

import sys

import click

from ipvsctl.session import Failure
from ipvsctl.vocab import EXIT_INVALID


def read_input(path: str) -> str:
    name = "standard input" if path == "-" else path
    try:
        if path == "-":
            # Bytes, decoded here as a file is: sys.stdin's own decoding
            # (surrogateescape) let bytes that are not UTF-8 through as text.
            stdin = getattr(sys.stdin, "buffer", None)
            if stdin is None:  # a text stream put in its place (tests)
                return sys.stdin.read()
            return stdin.read().decode("utf-8")
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:  # standard input closed (<&-) or unreadable, too
        raise Failure(f"{name}: {e.strerror}", EXIT_INVALID) from None
    except UnicodeDecodeError as e:
        raise Failure(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})", EXIT_INVALID) from None


def desired_table(command: str, path: str, scopes, prune: bool = False):
    """The checked desired table and scope; Failure (nothing changed) if bad,
    or if it is empty while ``prune`` would remove what the file leaves out."""
    from ipvsctl.desired import source
    from ipvsctl.desired.plan import check_scope
    from ipvsctl.desired.scope import Scope, ScopeError

    try:
        scope = Scope.parse(scopes)
    except ScopeError as e:
        raise Failure(f"{command}: {e}", EXIT_INVALID) from None
    name = "standard input" if path == "-" else path
    text = read_input(path)
    if prune and not text.strip():
        # An input that came out empty (a failed render, stdin from
        # /dev/null) would make --prune remove every service in scope.  An
        # empty table meant as one is written as one.
        raise Failure(f"{command}: {name} is empty: with --prune that would remove every service "
                      "in scope (nothing was changed); to mean an empty table, write one: a "
                      "comment line, or {\"services\": []}", EXIT_INVALID)
    try:
        desired = source.load(text)
        check_scope(desired, scope, desired.origins)
    except source.InputError as e:
        raise Failure(f"{command}: {name}: {e.message} (nothing was changed)", e.exit_code) from None
    except ScopeError as e:
        raise Failure(f"{command}: {name}: {e} (nothing was changed)", EXIT_INVALID) from None
    _check_names(command, name, desired)
    return desired, scope


def _check_names(command: str, name: str, desired) -> None:
    """Refuse, before anything is read or sent, a scheduler or persistence
    engine this kernel cannot use (restore's check): otherwise the kernel
    refuses the step half-way and apply has to roll back what it applied."""
    from ipvsctl import schedulers

    report = schedulers.check_services((desired.origins.get(svc.key, "?"), svc) for svc, _ in desired)
    if report.refused:
        for line in report.refusals():
            click.echo(f"{command}: {name}: {line}", err=True)
        raise Failure(f"{command}: nothing was changed", EXIT_INVALID)


def live_table(backend, command: str):
    from ipvsctl import listing
    from ipvsctl.backend import KernelError
    from ipvsctl.desired.plan import table_of

    try:
        return table_of(listing.table(backend, counters=False, sort=False))
    except KernelError as e:
        raise Failure(f"{command}: cannot read the table: {listing.failure_message(e)}",
                      EXIT_INVALID) from None


def sysctl_values(netns):
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


def show_plan(plan, fmt: str, sysctl_values) -> None:
    from ipvsctl.desired import render as R
    from ipvsctl.desired import sysctls as S
    from ipvsctl.render.json import dumps

    out = sys.stdout
    if fmt == "rules":
        out.write(R.plan_rules(plan))
    elif fmt == "json":
        out.write(dumps(R.plan_doc(plan, S.doc(sysctl_values) if sysctl_values else None),
                        pretty=out.isatty()))
    else:
        out.write(R.plan_text(plan))
        if plan.leaving() and sysctl_values:
            out.write("".join(f"  {line}\n" for line in S.lines(sysctl_values)))
