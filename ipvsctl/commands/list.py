"""``ipvsctl list`` (``ls``): the table for people (body: views.run_list)."""

from __future__ import annotations

import click

from ipvsctl import views
from ipvsctl.commands.options import usage_errors, with_options


@click.command("list")
@with_options(views.LIST_OPTIONS)
def command(**params):
    """Virtual services and their real servers, as tables (alias: ls).

    A weight-0 real server is marked "draining", a service without real
    servers "no real servers".  Addresses are always numeric.
    """
    with usage_errors():
        return views.run_list(**params)
