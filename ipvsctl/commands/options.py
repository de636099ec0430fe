"""The click options the subcommands share, made from data.

Strategy: the options of ``list`` and ``watch`` (and the namespace and
output options every view takes) are declared once, as data, in
ipvsctl.views (``views.Opt``), so that a plain line can be read without
click (``views.run_fast``); here they become click options, for help,
completion and click's error messages.  ``usage_errors`` turns a bad option
value found by the views' own code (``views.Usage``) into click's.
"""

from __future__ import annotations

from contextlib import contextmanager

import click

from ipvsctl import views


class Seconds(click.FloatRange):
    """A number of seconds from ``min`` up to vocab.MAX_SECONDS: click's
    FloatRange lets "nan" and "inf" through (every comparison with NaN is
    false), and time.sleep and lock waits refuse what is longer than about
    1e10 s.  An infinite interval ended ``watch`` in a traceback; a NaN
    timeout made ``drain`` wait "up to nan s", for ever."""

    def convert(self, value, param, ctx):
        from ipvsctl.vocab import MAX_SECONDS

        seconds = super().convert(value, param, ctx)
        if not seconds <= MAX_SECONDS:  # also NaN
            self.fail(f"{value!r} is not a number of seconds up to {MAX_SECONDS:.0e}.", param, ctx)
        return seconds


def only_once(ctx, param, values):
    """The callback of an option that names one thing (a service, a real
    server, an address): click keeps the last of a repeated option without
    a word, so `drain -r A -r B` drained B alone.  Declared multiple=True,
    it is refused when given more than once."""
    if len(values) > 1:
        shown = ", ".join(str(v) for v in values)
        raise click.BadParameter(f"given {len(values)} times ({shown}); it names one", ctx=ctx, param=param)
    return values[0] if values else None


ONCE = {"multiple": True, "callback": only_once}


def _click_option(opt: views.Opt):
    """The click option of a views.Opt."""
    kwargs = {"help": opt.help}
    if opt.metavar:
        kwargs["metavar"] = opt.metavar
    if opt.kind == "flag":
        kwargs["is_flag"] = True
    elif opt.kind == "int":
        kwargs["type"] = click.IntRange(min=opt.minimum)
    elif opt.kind == "float":
        kwargs["type"] = Seconds(min=opt.minimum)
    elif opt.kind == "choice":
        kwargs["type"] = click.Choice(list(opt.choices), case_sensitive=False)
    if opt.default not in (None, False):
        kwargs["default"] = opt.default
        kwargs["show_default"] = opt.show_default
    if opt.dest == "numeric":
        kwargs["expose_value"] = False
    if opt.single:
        kwargs.update(ONCE)
    return click.option(*opt.flags, opt.dest, **kwargs)


def with_options(options):
    """Decorate a command with the click options of ``options`` (views.Opt)."""

    def decorate(f):
        for opt in reversed(options):
            f = _click_option(opt)(f)
        return f

    return decorate


netns_option = with_options(views.NETNS)


def service_options(metavar: str, help_of):
    """Decorate a command with an option per protocol naming a service in
    ipvsadm's spellings (-t/--tcp-service, -u/--udp-service, --sctp-service;
    parameters tcp, udp, sctp): ``help_of(term, first)`` says each one's help."""
    from ipvsctl.vocab import PROTOCOLS

    def decorate(f):
        for i, p in reversed(list(enumerate(PROTOCOLS))):
            f = click.option(*views.spellings(p), p.key, metavar=metavar, help=help_of(p, i == 0),
                             **ONCE)(f)
        return f

    return decorate


@contextmanager
def usage_errors():
    """A bad option value the views found (views.Usage), as click reports one."""
    try:
        yield
    except views.Usage as e:
        if e.hint:
            raise click.BadParameter(e.message, param_hint=e.hint) from None
        raise click.UsageError(e.message) from None
