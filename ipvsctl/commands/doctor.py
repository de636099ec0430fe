"""``ipvsctl doctor``: check the director (logic: ipvsctl.doctor)."""

from __future__ import annotations

import sys

import click

from ipvsctl.app import EXIT_BAD_INPUT, Failure, _console, netns_option

STYLES = {"ok": "green", "note": "yellow", "problem": "bold red"}


@click.command("doctor")
@click.option("--ignore", "ignore", multiple=True, metavar="ID",
              help="Count the problems of finding ID (shown in brackets, e.g. sync-daemons) as "
                   "notes; may be given more than once.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document (schema: docs/json.md).")
@click.option("--no-color", is_flag=True, help="No colours (also without a terminal, or with NO_COLOR set).")
@netns_option
def doctor_command(ignore, as_json, no_color, netns):
    """Check IPVS, its modules, the sysctls that matter and the table; explain each.

    One line per finding: ok, note (how a setting behaves here) or problem.
    Exit status 0 when there is no problem, 1 when there is one.
    """
    from ipvsctl import doctor
    from ipvsctl.netlink.transport import NetnsNotFound

    unknown = set(ignore) - set(doctor.check_ids())
    if unknown:
        raise click.BadParameter(f"no finding is called {sorted(unknown)[0]!r}; the ids: "
                                 + ", ".join(doctor.check_ids()), param_hint="'--ignore'")
    try:
        facts = doctor.gather(netns)
    except NetnsNotFound as e:
        from ipvsctl.errors import netns_open_error

        raise Failure(netns_open_error(netns, e), EXIT_BAD_INPUT) from None
    findings = doctor.apply_ignores(doctor.diagnose(facts), ignore)
    if as_json:
        from ipvsctl.render.json import dumps

        sys.stdout.write(dumps(doctor.report_doc(findings), pretty=sys.stdout.isatty()))
    else:
        _print(findings, _console(None, no_color))
    return 1 if doctor.has_problems(findings) else 0


def _print(findings, console) -> None:
    from rich.text import Text

    for x in findings:
        line = Text()
        line.append(f"{x.status:<8} ", STYLES[x.status])
        line.append(x.message)
        if x.status == "problem" or x.ignored:
            line.append(f"  [{x.id}{', ignored' if x.ignored else ''}]", "dim")
        console.print(line, soft_wrap=True)
    problems = sum(1 for x in findings if x.status == "problem")
    notes = sum(1 for x in findings if x.status == "note")
    console.print(Text(f"doctor: {problems} problem{'s' if problems != 1 else ''}, "
                       f"{notes} note{'s' if notes != 1 else ''}", "bold" if problems else ""),
                  soft_wrap=True)
