"""``ipvsctl diff``: what apply would change (logic: ipvsctl.desired.plan)."""

from __future__ import annotations

import click

from ipvsctl.commands.desired_io import desired_table, live_table, scope_options, show_plan, sysctl_values
from ipvsctl.commands.options import netns_option
from ipvsctl.session import opened
from ipvsctl.vocab import EXIT_DIFFERS


@click.command("diff")
@click.argument("file", default="-", metavar="[FILE|-]")
@scope_options
@click.option("--format", "fmt", type=click.Choice(["text", "rules", "json"]), default="text",
              show_default=True, help="text for people; rules: ipvsadm lines that converge the "
                                      "table (for ipvsadm -R); json: the plan document.")
@netns_option
def command(file, prune, scopes, fmt, netns):
    """What apply would change to make the table match FILE.

    FILE (default: standard input) holds -A/-a lines as -S writes them, or a
    `list --json` document.  Exit status 0: in sync, 1: differences, 2: bad
    input, as diff(1).
    """
    from ipvsctl.desired.plan import plan

    desired, scope = desired_table("diff", file, scopes, prune)
    with opened(netns) as backend:
        live = live_table(backend, "diff")
    p = plan(desired, live, scope, prune)
    show_plan(p, fmt, sysctl_values(netns) if fmt == "json" or p.leaving() else None)
    return 0 if p.in_sync else EXIT_DIFFERS
