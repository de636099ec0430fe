"""``ipvsctl metrics``: the table for Prometheus (logic: ipvsctl.metrics)."""

from __future__ import annotations

import sys

import click

from ipvsctl import session
from ipvsctl.commands.options import Seconds, netns_option
from ipvsctl.session import Failure
from ipvsctl.vocab import EXIT_INVALID, EXIT_READ_FAILED


def _open(netns):
    """The backend, or the reason it cannot be opened (for a failed scrape).

    A namespace that does not exist is bad input (exit 2); no IPVS in the
    kernel is a failed read (the document says ipvs_scrape_success 0).
    """
    from ipvsctl.backend import KernelError

    try:
        return session.open_backend(netns), None
    except KernelError as e:
        return None, session.open_failure(netns, e).message.replace("\n", " ")
    except OSError as e:
        raise session.open_failure(netns, e) from None


def _write_atomically(path: str, snap) -> None:
    """FILE replaced in one rename, so a collector never reads half of it."""
    import os

    from ipvsctl import metrics

    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            metrics.write(snap, f)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise Failure(f"metrics: {path}: {e.strerror}", EXIT_INVALID) from None


@click.command("metrics")
@click.option("--listen", metavar="ADDR:PORT",
              help="Serve /metrics over HTTP on ADDR:PORT ([::1]:PORT for IPv6, :PORT for every "
                   "IPv4 address) instead of printing once; each scrape reads the kernel afresh.")
@click.option("-o", "--output", metavar="FILE",
              help="Write to FILE (replaced in one rename, for node_exporter's textfile "
                   "collector) instead of standard output.")
@click.option("--wait", type=Seconds(min=0.1), default=10.0, show_default=True,
              metavar="SECONDS",
              help="With --listen: how long a scrape may wait for the one before it to finish "
                   "reading the table before it is answered 503.")
@netns_option
def command(listen, output, wait, netns):
    """The table's counters, rates and settings in Prometheus' text format.

    Per virtual service and per real server: connections, packets and bytes
    (exact counters), the kernel's rate estimates, active, inactive and
    persistent connections, weight; also timeouts, sync daemons, and
    ipvs_scrape_success / ipvs_scrape_duration_seconds.  Exit status 1 when
    the table could not be read (the document then says
    ipvs_scrape_success 0).  Metric names and labels: docs/operating.md.

    \b
    textfile collector:  ipvsctl metrics -o /var/lib/node_exporter/ipvs.prom
    HTTP:                ipvsctl metrics --listen 127.0.0.1:9720
    """
    from ipvsctl import metrics

    if listen is not None:
        if output is not None:
            raise click.UsageError("--output and --listen do not go together")
        return _serve(listen, wait, netns)
    backend, failure = _open(netns)
    if backend is None:
        snap = metrics.Snapshot(error=failure)
    else:
        try:
            snap = metrics.Snapshot.read(backend)
        finally:
            backend.close()
    if output is not None:
        _write_atomically(output, snap)
    else:
        metrics.write(snap, sys.stdout)
    if not snap.ok:
        click.echo(f"ipvsctl metrics: reading the IPVS table failed: {snap.error}", err=True)
        return EXIT_READ_FAILED
    return 0


def _serve(listen: str, wait: float, netns) -> int:
    import signal

    from ipvsctl import metrics_http

    if netns is not None:
        backend, _ = _open(netns)  # a namespace that does not exist is bad input: say so now
        if backend is not None:
            backend.close()
    try:
        server, scraper = metrics_http.make_server(listen, lambda: session.open_backend(netns), wait)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--listen'") from None
    except OSError as e:
        raise Failure(f"metrics: cannot listen on {listen}: {e.strerror}", EXIT_INVALID) from None

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    # ipvsctl restores SIGPIPE's default action at start (ipvsctl.stdio), so
    # that a listing whose reader left ends as ipvsadm's does; a server must
    # outlive a scraper that hangs up half-way: its write fails, not the process.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    where = f" (the table of network namespace {netns})" if netns else ""
    click.echo(f"ipvsctl metrics: serving http://{shown}:{port}/metrics{where}", err=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        scraper.close()
    return 0
