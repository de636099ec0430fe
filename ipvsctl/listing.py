"""The listing query: what every view of the table reads, read one way.

Strategy: ipvsadm's ``-L``/``-S`` (as text or ``--json``), ``ipvsctl list``
and ``watch``, and diff/apply/drain's live table all show or use the same
reads.  This module is the one place that decides what to read for each
(the whole table or one service, with or without counters, the header or
not), puts services and real servers in ipvsadm's order (``order``, unless
``--nosort``), keeps the real servers of a listing without counters in
columns (``rows.DestinationRows``) so that a big plain listing is drawn
from its columns, applies the views' filters, and turns a failed read into
ipvsadm's exit status and message.  Everything that shows a listing only
formats it (render.text, render.json, render.table, watch).

* ``table(backend, ...)``: services with their real servers, in order;
  raises KernelError.
* ``read(backend, Query)``: what an ipvsadm list command (``-L``, ``-S``,
  ``-c``, ``--timeout``, ``--daemon``) shows, as a ``Listing``: the values,
  or the exit status and message of the read that failed.
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py's enum classes cost start-up time

from ipvsctl import backend as b
from ipvsctl import vocab as v
from ipvsctl.netlink.constants import IP_VS_CONN, IP_VS_CONN_FILE

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only
    from ipvsctl.command import Command
    from ipvsctl.model import ServiceKey

# What a list command shows.
TABLE = "table"  # every service (-L, -S)
SERVICE = "service"  # one service (-L -t ...)
CONNECTIONS = "connections"  # -L -c
TIMEOUTS = "timeouts"  # -L --timeout
DAEMONS = "daemons"  # -L --daemon


def table(backend, key: ServiceKey | None = None, *, counters: bool = True, sort: bool = True,
          protocol: str | None = None, address: str | None = None) -> list:
    """[(Service, real servers)]: every service, or the one of ``key``;
    KernelError when it cannot be read.

    ``counters``: read the counters (without, a service's real servers may
    come as columns, DestinationRows).  ``sort``: in ipvsadm's order, else
    the kernel's.  ``protocol`` ('tcp', 'udp', 'sctp' or 'fwmark') and
    ``address`` (canonical text: ``normalize_address``) keep only what they
    name: services of that protocol; services at that virtual address (with
    all their real servers) and services with that real server (with only
    the matching ones).
    """
    if key is not None:
        entries = [(backend.service(key), backend.destinations(key))]
    else:
        entries = backend.table(counters=counters)
    if sort:
        from ipvsctl.order import sort_destinations, sort_services

        entries = [(svc, sort_destinations(dests)) for svc, dests in
                   sort_services(entries, service_of=lambda entry: entry[0])]
    if protocol is not None or address is not None:
        entries = _filtered(entries, protocol, address)
    return entries


def _filtered(entries, protocol: str | None, address: str | None) -> list:
    out = []
    for svc, dests in entries:
        k = svc.key
        if protocol is not None:
            if protocol == "fwmark":
                if not k.fwmark:
                    continue
            elif k.fwmark or k.protocol != v.PROTOCOLS.numbers[protocol]:
                continue
        if address is not None and k.addr != address:
            dests = [d for d in dests if d.addr == address]
            if not dests:
                continue
        out.append((svc, dests))
    return out


def normalize_address(text: str) -> str:
    """Canonical text of an IPv4/IPv6 address ('[2001:DB8::1]' -> '2001:db8::1').

    Raises ValueError for anything else.
    """
    t = text.strip()
    if t.startswith("[") and t.endswith("]"):
        t = t[1:-1]
    for af in (v.AF_INET, v.AF_INET6):
        try:
            return socket.inet_ntop(af, socket.inet_pton(af, t))
        except OSError:
            continue
    raise ValueError(f"not an IPv4 or IPv6 address: {text!r}")


def failure_message(e: b.KernelError) -> str:
    """ipvsadm's sentence for a read that failed (the operation that failed
    names it; a list is read by its service dump)."""
    from ipvsctl.errors import kernel_message

    return kernel_message(e.op or b.OP_GET_SERVICES, e.errno)


# --------------------------------------------------------------------------
# ipvsadm's list commands
# --------------------------------------------------------------------------


class Query:
    """What one list command reads: ``kind`` (TABLE, SERVICE, ...), the
    service ``key`` (SERVICE), ``counters``, ``sort``, and ``header``:
    whether the version line (IPVS's info) is read first."""

    __slots__ = ("kind", "key", "counters", "sort", "header")

    def __init__(self, kind: str, key=None, counters: bool = True, sort: bool = True,
                 header: bool = False):
        self.kind = kind
        self.key = key
        self.counters = counters
        self.sort = sort
        self.header = header

    @classmethod
    def of(cls, cmd: Command, as_json: bool = False) -> Query:
        """The query of a parsed -L or -S line.  A JSON document always holds
        the counters and the version; the text prints the counters only in
        the modes that show them, and the version line only for -L."""
        o, fmt = cmd.options, cmd.fmt
        if "connection" in o:
            return cls(CONNECTIONS)
        if "timeout" in o:
            return cls(TIMEOUTS)
        if "daemon" in o:
            return cls(DAEMONS)
        kind, key = (SERVICE, cmd.service_key()) if "service-address" in o else (TABLE, None)
        return cls(kind, key, counters=as_json or fmt.stats or fmt.rate, sort=not fmt.nosort,
                   header=as_json or (kind == TABLE and cmd.name == "list"))


class Listing:
    """What a list command shows: ``info`` (when the query asked for the
    header and it was read) and ``value``: the table [(Service, real
    servers)], the raw connection table, the Timeouts or the daemons.  A
    read that failed leaves ``status`` EXIT_READ_FAILED and ``message``
    (ipvsadm's words; empty where ipvsadm says nothing)."""

    __slots__ = ("query", "info", "value", "status", "message")

    def __init__(self, query: Query):
        self.query = query
        self.info = None
        self.value = None
        self.status = v.EXIT_OK
        self.message = ""

    @property
    def ok(self) -> bool:
        return self.status == v.EXIT_OK

    def _failed(self, message: str = "") -> Listing:
        self.status = v.EXIT_READ_FAILED
        self.message = message
        return self


def read(backend, query: Query) -> Listing:
    """Read what ``query`` asks for; never raises KernelError."""
    result = Listing(query)
    kind = query.kind
    if kind == CONNECTIONS:
        try:
            result.value = backend.read_proc_net(IP_VS_CONN)
        except OSError:
            return result._failed(f"cannot open file {IP_VS_CONN_FILE}")
        return result
    if kind in (TIMEOUTS, DAEMONS):
        try:
            result.value = backend.timeouts() if kind == TIMEOUTS else backend.daemons()
        except b.KernelError:
            return result._failed()  # ipvsadm says nothing, and exits 1
        return result
    try:
        if query.header:
            result.info = backend.info()
        result.value = table(backend, query.key, counters=query.counters, sort=query.sort)
    except b.KernelError as e:
        return result._failed(failure_message(e))
    return result
