"""``ipvsctl doctor``: check the director (logic: ipvsctl.doctor)."""

from __future__ import annotations

import sys

import click

from ipvsctl import views
from ipvsctl.commands.options import netns_option, with_options
from ipvsctl.session import open_failure
from ipvsctl.vocab import EXIT_OK, EXIT_PROBLEMS


@click.command("doctor")
@click.option("--ignore", "ignore", multiple=True, metavar="ID",
              help="Count the problems of finding ID (shown in brackets, e.g. sync-daemons) as "
                   "notes; may be given more than once.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document (schema: docs/json.md).")
@with_options(tuple(o for o in views.OUTPUT if o.dest == "no_color"))
@netns_option
def command(ignore, as_json, no_color, netns):
    """Check IPVS, its modules, the sysctls that matter and the table; explain each.

    One line per finding: ok, note (how a setting behaves here) or problem.
    Exit status 0 when there is no problem, 1 when there is one.
    """
    from ipvsctl import doctor
    from ipvsctl.netlink.netns import NetnsNotFound

    unknown = set(ignore) - set(doctor.check_ids())
    if unknown:
        raise click.BadParameter(f"no finding is called {sorted(unknown)[0]!r}; the ids: "
                                 + ", ".join(doctor.check_ids()), param_hint="'--ignore'")
    try:
        facts = doctor.gather(netns)
    except NetnsNotFound as e:
        raise open_failure(netns, e) from None
    findings = doctor.apply_ignores(doctor.diagnose(facts), ignore)
    if as_json:
        from ipvsctl.render.json import dumps

        sys.stdout.write(dumps(doctor.report_doc(findings), pretty=sys.stdout.isatty()))
    else:
        from ipvsctl.render.doctor_view import report_lines
        from ipvsctl.render.layout import write_lines

        write_lines(sys.stdout, report_lines(findings, views.output(None, no_color)))
    return EXIT_PROBLEMS if doctor.has_problems(findings) else EXIT_OK
