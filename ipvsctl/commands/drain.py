"""``ipvsctl drain``: weight 0, wait, remove (logic: ipvsctl.desired.drain_server)."""

from __future__ import annotations

import click

from ipvsctl.commands.desired_io import sysctl_values
from ipvsctl.commands.options import ONCE, Seconds, netns_option, service_options
from ipvsctl.session import Failure, opened
from ipvsctl.vocab import EXIT_INVALID, PROTOCOLS


@click.command("drain")
@service_options("HOST:PORT", lambda p, first: f"The {p.label} service.")
@click.option("-f", "--fwmark-service", "fwmark", metavar="MARK", help="The firewall-mark service.",
              **ONCE)
@click.option("-6", "--ipv6", is_flag=True, help="With -f: the IPv6 fwmark service.")
@click.option("-r", "--real-server", "server", required=True, metavar="SERVER[:PORT]",
              help="The real server to drain (its port defaults to the service's, as in ipvsadm).",
              **ONCE)
@click.option("--timeout", type=Seconds(min=0), default=300.0, show_default=True,
              metavar="SECONDS", help="Give up after this long: the server stays at weight 0, exit 1.")
@click.option("--keep", is_flag=True, help="Keep the drained server at weight 0 instead of removing it.")
@click.option("--interval", type=Seconds(min=0.05), default=1.0, show_default=True,
              metavar="SECONDS", help="How often to look at the connection counts.")
@netns_option
def command(tcp, udp, sctp, fwmark, ipv6, server, timeout, keep, interval, netns):
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
    with stdio.held(), opened(netns) as backend:  # failing output does not stop the drain
        return run(backend, key, dest, timeout=timeout, keep=keep, interval=interval, netns=netns,
                   sysctl_values=sysctl_values(netns))


def _drain_target(tcp, udp, sctp, fwmark, ipv6, server):
    """(ServiceKey, Destination naming the server) as ipvsadm -d reads them."""
    from ipvsctl.grammar import ParseError, named

    given = [(p.rule, value) for p, value in zip(PROTOCOLS, (tcp, udp, sctp)) if value is not None]
    if fwmark is not None:
        given.append(("-f", fwmark))
    if len(given) != 1:
        raise click.UsageError("name the service with exactly one of -t, -u, --sctp-service, -f")
    if ipv6 and fwmark is None:
        raise click.UsageError("-6/--ipv6 goes with -f/--fwmark-service")
    try:
        cmd = named(given, ipv6, server)
    except ParseError as e:
        raise Failure(f"drain: {e.message.strip() or 'bad service or server address'}",
                      EXIT_INVALID) from None
    return cmd.service_key(), cmd.destination()
