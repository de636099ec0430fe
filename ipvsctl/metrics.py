"""``ipvsctl metrics``: the IPVS table in the Prometheus text exposition format.

Strategy: one consistent read of the kernel (``Snapshot.read``: info, the
table with its exact 64-bit counters, timeouts, sync daemons), then a pure,
lazy renderer (``exposition``) that yields the text in pieces, so the caller
writes it while it is made (stdout for node_exporter's textfile collector,
or an HTTP response: ``ipvsctl.metrics_http``).

Why the format is written here and not by ``prometheus_client``, measured
(docs/performance.md, "metrics"): the library builds a Sample (a named
tuple with a label dict) per value and formats each one in Python, then
joins the whole document in memory.  For the 110,000-entry benchmark table
(14 values per real server, about 1.5 million lines) that took about 15 s
and more than 1 GB natively, against a few seconds for ``-Ln --stats`` of
the same table; it also prints every value as a float, which loses the
exactness of counters above 2^53.  So this module writes the same format
itself: every label set is formatted once per entry, then each family is
one C-level ``%`` map over columns of values, joined a few thousand lines
at a time; values are exact integers.  The unit tests hold the output to
what ``prometheus_client`` itself writes for the same families, and to its
parser; the kernel tests run ``promtool check metrics`` on it.
``prometheus_client`` is a test dependency only: nothing at run time
imports it.

Labels (stable values, unique sets):

* services: ``family`` (inet, inet6), ``protocol`` (tcp, udp, sctp; empty
  for a fwmark service), ``address`` (canonical text, no brackets; empty for
  a fwmark service), ``port`` (empty for a fwmark service), ``fwmark`` (the
  unsigned mark; empty for an address service), ``scheduler``;
* real servers: the service's labels plus ``real_address``, ``real_port``
  and ``forward`` (masq, route, tunnel, local, bypass).

A service is named by (family, protocol, address, port, fwmark), a real
server by its service and (real_address, real_port), so no two samples of
one family share a label set: an IPv4 and an IPv6 fwmark service with the
same mark differ by ``family`` (node_exporter's ipvs collector emitted
those twice).  Names and JSON-style values follow docs/json.md.
"""

from __future__ import annotations

import time
from itertools import chain, repeat
from operator import attrgetter

from ipvsctl import model as m
from ipvsctl import vocab as v

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "ipvs_"

#: Lines joined into one piece of output.
LINES_PER_PIECE = 256

# (name after ipvs_service_ / ipvs_real_server_, Stats attribute, help)
COUNTERS = (
    ("connections_total", "conns", "Connections scheduled"),
    ("incoming_packets_total", "inpkts", "Packets from clients"),
    ("outgoing_packets_total", "outpkts", "Packets to clients"),
    ("incoming_bytes_total", "inbytes", "Bytes from clients"),
    ("outgoing_bytes_total", "outbytes", "Bytes to clients"),
)
RATES = (
    ("connections_per_second", "cps", "New connections per second"),
    ("incoming_packets_per_second", "inpps", "Packets from clients per second"),
    ("outgoing_packets_per_second", "outpps", "Packets to clients per second"),
    ("incoming_bytes_per_second", "inbps", "Bytes from clients per second"),
    ("outgoing_bytes_per_second", "outbps", "Bytes to clients per second"),
)
RATE_HELP = " (the kernel's rate estimate, updated every 2 s; 0 when run_estimation is off)"
# (name, Destination attribute, help) of the per-real-server gauges; a
# service shows the sum over its real servers.
GAUGES = (
    ("active_connections", "active_conns", "Active connections (TCP: established)"),
    ("inactive_connections", "inact_conns", "Inactive connections (TCP: not established; UDP)"),
    ("persistent_connections", "persist_conns", "Persistence templates"),
    ("weight", "weight", "Weight (0: draining, no new connections)"),
)

_ZERO = m.Stats()
_STATS = attrgetter("stats")


class Snapshot:
    """What one scrape reads from the kernel, or why it could not.

    ``error`` is None, or a short text for ipvs_scrape_success 0.
    """

    __slots__ = ("info", "table", "timeouts", "daemons", "error", "started", "read_seconds")

    def __init__(self, info=None, table=(), timeouts=None, daemons=(), error=None,
                 started: float | None = None, read_seconds: float = 0.0):
        self.info = info
        self.table = table
        self.timeouts = timeouts
        self.daemons = daemons
        self.error = error
        self.started = time.perf_counter() if started is None else started
        self.read_seconds = read_seconds

    @classmethod
    def read(cls, backend) -> Snapshot:
        """Everything a scrape shows, read afresh (a KernelError or OSError
        becomes a failed snapshot: the scrape still answers, with
        ipvs_scrape_success 0)."""
        from ipvsctl import listing
        from ipvsctl.backend import KernelError

        started = time.perf_counter()
        try:
            info = backend.info()
            table = listing.table(backend, counters=True, sort=False)
            timeouts = backend.timeouts()
            daemons = backend.daemons()
        except (KernelError, OSError) as e:
            return cls(error=str(e) or type(e).__name__, started=started,
                       read_seconds=time.perf_counter() - started)
        return cls(info, table, timeouts, daemons, started=started,
                   read_seconds=time.perf_counter() - started)

    @property
    def ok(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------
# Label sets
# --------------------------------------------------------------------------


def label_value(text: str) -> str:
    """A label value escaped as the text format wants (backslash, quote, newline)."""
    if "\\" in text or '"' in text or "\n" in text:
        return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return text


def service_labels(key: m.ServiceKey, scheduler: str) -> str:
    """'family="inet",protocol="tcp",address="192.0.2.1",port="80",fwmark="",scheduler="rr"'."""
    family = v.FAMILIES.key(key.af, str(key.af))
    if key.fwmark:
        protocol = address = port = ""
        fwmark = str(key.fwmark)
    else:
        protocol = v.PROTOCOLS.key(key.protocol, str(key.protocol))
        address, port, fwmark = key.addr or "", str(key.port), ""
    return (f'family="{family}",protocol="{protocol}",address="{address}",port="{port}",'
            f'fwmark="{fwmark}",scheduler="{label_value(scheduler)}"')


class _Names(dict):
    """The vocabulary's JSON keys of the forwarding methods, for a C-level
    map: an unknown number stands for itself."""

    def __missing__(self, key):
        return str(key)


_FORWARD = _Names({f.number: f.key for f in v.FORWARDS})


#: The real server's part of its label set, after its service's labels.
REAL_SERVER_LABELS = ',real_address="%s",real_port="%d",forward="%s"'


# --------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------


def _header(name: str, kind: str, text: str) -> str:
    return f"# HELP {name} {text}\n# TYPE {name} {kind}\n"


def _family(name: str, kind: str, text: str, labels: str, columns: list, values: Iterable[int]) -> Iterator[str]:
    """One metric family: its HELP and TYPE lines, then a line per entry.

    ``labels`` is the label set's format (``{%s}`` for a service), filled
    from ``columns`` (same-length lists: for a real server its service's
    label string, address, port and forwarding method), then the value.
    Each piece is one ``%`` of a format holding LINES_PER_PIECE lines over a
    flat tuple of their arguments: no string is made per label set or per
    line, only one per piece.  Under User-Mode Linux every allocation that
    needs fresh memory costs ~80 us a page, and 1.5 million lines add up.
    """
    line = name.replace("%", "%%") + labels + " %d\n"
    values = iter(values)
    whole = line * LINES_PER_PIECE
    head = _header(name, kind, text)
    n = len(columns[0])
    for start in range(0, n, LINES_PER_PIECE):
        stop = min(n, start + LINES_PER_PIECE)
        fmt = whole if stop - start == LINES_PER_PIECE else line * (stop - start)
        args = zip(*[c[start:stop] for c in columns], values)
        piece = fmt % tuple(chain.from_iterable(args))
        yield head + piece if start == 0 else piece
    if not n:
        yield head


class _Columns:
    """The table as the columns the families are rendered from: lists of
    references to what the table already holds (plus one label string per
    service), so that building them takes next to no fresh memory."""

    def __init__(self, table):
        self.svc_labels: list[str] = []
        self.svc_stats: list[m.Stats] = []
        self.svc_sums: dict[str, list[int]] = {attr: [] for _, attr, _ in GAUGES}
        self.svc_servers: list[int] = []
        self.dest_svc: list[str] = []  # each real server's service label string
        self.dests: list[m.Destination] = []
        sums = [(attrgetter(attr), column) for attr, column in self.svc_sums.items()]
        for svc, dests in table:
            labels = service_labels(svc.key, svc.scheduler)
            self.svc_labels.append(labels)
            self.svc_stats.append(svc.stats or _ZERO)
            if not isinstance(dests, list):
                dests = list(dests)
            for get, column in sums:
                column.append(sum(map(get, dests)))
            self.svc_servers.append(len(dests))
            self.dest_svc += repeat(labels, len(dests))
            self.dests += dests
        d = self.dests
        self.dest_stats = [s if s is not None else _ZERO for s in map(_STATS, d)]
        self.dest_columns = [self.dest_svc, list(map(attrgetter("addr"), d)),
                             list(map(attrgetter("port"), d)),
                             list(map(_FORWARD.__getitem__, map(attrgetter("fwd"), d)))]


def entry_families(table) -> Iterator[str]:
    """The per-service and per-real-server families."""
    c = _Columns(table)
    for scope, labels, columns, stats in (
            ("service", "{%s}", [c.svc_labels], c.svc_stats),
            ("real_server", "{%s" + REAL_SERVER_LABELS + "}", c.dest_columns, c.dest_stats)):
        what = "virtual service" if scope == "service" else "real server"
        for suffix, attr, text in COUNTERS:
            yield from _family(f"{PREFIX}{scope}_{suffix}", "counter", f"{text}, per {what}",
                               labels, columns, map(attrgetter(attr), stats))
        for suffix, attr, text in RATES:
            yield from _family(f"{PREFIX}{scope}_{suffix}", "gauge", f"{text}, per {what}{RATE_HELP}",
                               labels, columns, map(attrgetter(attr), stats))
        for suffix, attr, text in GAUGES:
            if scope == "service":
                yield from _family(f"{PREFIX}service_{suffix}", "gauge",
                                   f"{text}, summed over the real servers of each virtual service",
                                   labels, columns, c.svc_sums[attr])
            else:
                yield from _family(f"{PREFIX}real_server_{suffix}", "gauge", f"{text}, per real server",
                                   labels, columns, map(attrgetter(attr), c.dests))
        if scope == "service":
            yield from _family(f"{PREFIX}service_real_servers", "gauge",
                               "Real servers of each virtual service", labels, columns, c.svc_servers)


def global_families(snap: Snapshot) -> Iterator[str]:
    """Version, connection table, timeouts and sync daemons."""
    if snap.info is not None:
        name = PREFIX + "version_info"
        yield (_header(name, "gauge", "IPVS version of the kernel (always 1)")
               + f'{name}{{version="{snap.info.version_text}"}} 1\n')
        name = PREFIX + "connection_table_size"
        yield (_header(name, "gauge", "Buckets of the kernel's connection hash table")
               + f"{name} {snap.info.conn_tab_size}\n")
    if snap.timeouts is not None:
        name = PREFIX + "timeout_seconds"
        t = snap.timeouts
        yield (_header(name, "gauge", "Connection timeouts (ipvsadm --set tcp tcpfin udp)")
               + f'{name}{{timeout="tcp"}} {t.tcp}\n{name}{{timeout="tcp_fin"}} {t.tcp_fin}\n'
               + f'{name}{{timeout="udp"}} {t.udp}\n')
    if snap.info is not None:
        running = {v.DAEMONS.key(d.state, str(d.state)): d for d in snap.daemons}
        name = PREFIX + "sync_daemon_running"
        yield (_header(name, "gauge", "1 when the connection sync daemon of this role runs")
               + "".join(f'{name}{{role="{role}"}} {1 if role in running else 0}\n'
                         for role in (d.key for d in v.DAEMONS)))
        name = PREFIX + "sync_daemon_info"
        lines = [
            f'{name}{{role="{role}",interface="{label_value(d.mcast_ifn)}",syncid="{d.syncid}",'
            f'group="{d.mcast_group or ""}",port="{d.mcast_port}",ttl="{d.mcast_ttl}",'
            f'maxlen="{d.sync_maxlen}"}} 1\n'
            for role, d in sorted(running.items())]
        yield _header(name, "gauge", "Settings of each running sync daemon (always 1)") + "".join(lines)


def scrape_families(snap: Snapshot) -> str:
    """Success and duration: written last, so the duration covers the whole scrape."""
    name = PREFIX + "scrape_success"
    # A plain comment (the format allows them) says why a read failed.
    text = "" if snap.ok else "# ipvsctl: reading the IPVS table failed: %s\n" % snap.error.replace("\n", " ")
    text += _header(name, "gauge", "1 when the last read of the IPVS table succeeded") + \
        f"{name} {1 if snap.ok else 0}\n"
    name = PREFIX + "scrape_duration_seconds"
    seconds = time.perf_counter() - snap.started
    return text + _header(name, "gauge", "Time to read the table and write this document") + \
        f"{name} {seconds:.6f}\n"


def exposition(snap: Snapshot) -> Iterator[str]:
    """The whole document, in pieces (each ends with a newline)."""
    if snap.ok:
        yield from global_families(snap)
        yield from entry_families(snap.table)
    yield scrape_families(snap)


def write(snap: Snapshot, out) -> None:
    for piece in exposition(snap):
        out.write(piece)

