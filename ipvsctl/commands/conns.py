"""``ipvsctl conns``: connections, filtered and summarised (logic: ipvsctl.conns)."""

from __future__ import annotations

import sys

import click

from ipvsctl import views
from ipvsctl.vocab import PROTOCOLS
from ipvsctl.commands.options import ONCE, netns_option, service_options, with_options
from ipvsctl.netlink.constants import IP_VS_CONN_FILE
from ipvsctl.session import Failure, open_failure
from ipvsctl.vocab import EXIT_READ_FAILED


def _service(tcp, udp, sctp):
    given = [(p, value) for p, value in zip(PROTOCOLS.numbers, (tcp, udp, sctp)) if value is not None]
    if len(given) > 1:
        raise click.UsageError("name one service: -t, -u or --sctp-service")
    return given[0] if given else (None, None)


@click.command("conns")
@service_options("ADDR[:PORT]", lambda p, first: (
    f"Only connections to this {p.label} virtual address (and port)." if first
    else f"The same for {p.label}."))
@click.option("-r", "--real-server", metavar="ADDR[:PORT]",
              help="Only connections scheduled to this real server.", **ONCE)
@click.option("--client", metavar="ADDR|CIDR",
              help="Only connections from this client address or network (198.51.100.0/24).",
              **ONCE)
@click.option("--protocol", type=click.Choice(list(PROTOCOLS.numbers), case_sensitive=False),
              help="Only connections of this protocol.", **ONCE)
@click.option("--state", "states", multiple=True, metavar="STATE",
              help="Only connections in this state (ESTABLISHED, TIME_WAIT, ...; any case); "
                   "may be given more than once.")
@click.option("--summary", is_flag=True,
              help="Count the connections by service, real server and state instead of listing them.")
@click.option("--top", type=click.IntRange(min=1), metavar="N",
              help="The N real servers with the most connections (over all services).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document (schema: docs/json.md).")
@with_options((views.NUMERIC,))  # the habit of ipvsadm -Lnc
@with_options(views.OUTPUT)
@netns_option
def command(tcp, udp, sctp, real_server, client, protocol, states, summary, top, as_json,
                  width, no_color, netns):
    """The connection table (as ipvsadm -Lnc), filtered, summarised or ranked.

    Read from the namespace's /proc/net/ip_vs_conn a line at a time: a
    table of millions of connections is streamed, never held.  Each entry
    is a connection or a persistence template (state NONE); a connection
    of a firewall-mark service shows the address it was sent to.
    """
    from ipvsctl import conns

    if summary and top:
        raise click.UsageError("--summary and --top do not go together")
    service_protocol, service = _service(tcp, udp, sctp)
    try:
        keep = conns.Filter(protocol=protocol, service=service, service_protocol=service_protocol,
                            real_server=real_server, client=client, states=states)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    from ipvsctl.netlink.netns import NetnsNotFound

    try:
        f = conns.open_conn_file(netns)
    except NetnsNotFound as e:
        raise open_failure(netns, e) from None
    except OSError:
        # ipvsadm -c's words: no IPVS in the kernel, or no such file.
        raise Failure(f"cannot open file {IP_VS_CONN_FILE}", EXIT_READ_FAILED) from None
    out = sys.stdout
    with f:
        if summary or top:
            counted = conns.Summary(conns.count(f, keep))
            if as_json:
                from ipvsctl.render.json import dumps

                doc = conns.top_doc(counted, top) if top else conns.summary_doc(counted)
                out.write(dumps(doc, pretty=out.isatty()))
                return 0
            from ipvsctl.render.conns_view import summary_lines, top_lines
            from ipvsctl.render.layout import write_lines

            view = views.output(width, no_color)
            write_lines(out, top_lines(counted, top, view) if top else summary_lines(counted, view))
            return 0
        if as_json:
            for piece in conns.json_lines(f, keep):
                out.write(piece)
            return 0
        from ipvsctl.render.conns_view import stream_list

        stream_list(conns.rows(f, keep), out, views.output(width, no_color))
    return 0
