"""``ipvsctl watch``: rates, live, busiest first (body: views.run_watch)."""

from __future__ import annotations

import click

from ipvsctl import views
from ipvsctl.commands.options import usage_errors, with_options


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


@click.command("watch")
@with_options(tuple(o for o in views.WATCH_OPTIONS if o.dest != "numeric"))
@click.option("-n", "--numeric", is_flag=False, flag_value="", default=None, metavar="",
              callback=_misread_numeric, expose_value=False, help=views.NUMERIC.help)
@click.option("-i", hidden=True, callback=_misread_ipip, expose_value=False)
def command(**params):
    """Live connection and byte rates per service and real server.

    The kernel's rate estimates (as ipvsadm -Ln --rate), busiest first (new
    connections per second, then bytes per second), redrawn in place every
    interval until Ctrl-C.  Off a terminal, or with --once / --iterations,
    each frame is printed after the last.  On a terminal only what fits the
    screen is shown, the busiest first.
    """
    with usage_errors():
        return views.run_watch(**params)
