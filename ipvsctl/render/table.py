"""The table for people: ``ipvsctl list`` as aligned text tables.

Strategy: pure functions from model values to lines of text; the caller
gives the Out (the width, the colours, the box characters).  One heading
line per virtual service (protocol, address, scheduler and its flags,
persistence, one-packet scheduling) and under it one table of its real
servers.  Whatever colour shows, the words show too: a draining real server
(weight 0) says "draining" in its weight cell, a service without real
servers says "no real servers", so the view reads the same in a pipe, with
``--no-color`` or ``NO_COLOR``, and on a terminal.

Counters are shown scaled for people (``1.2 M``, ``34 KB/s``) unless
``--exact`` asks for every digit.  Addresses are always numeric: a table
for people should not wait on DNS.

The layout (column widths, wrapping, colour) is ipvsctl.render.layout's:
plain text, so that ten thousand real servers print in a fraction of a
second.  ``tables_lines`` draws headings and tables of any view that looks
like this one (``ipvsctl conns --summary`` too).
"""

from __future__ import annotations

from ipvsctl import model as m
from ipvsctl import vocab as v
from ipvsctl.labels import host_port
from ipvsctl.netlink.rows import DestinationRows
from ipvsctl.render.layout import (Column, Layout, Out, fit, header_lines, heading, lines, measure,
                                   rule, wrap_words)

DRAINING = "draining"
NO_SERVERS = "no real servers"
ALL_DRAINING = "all real servers draining"

# Styles (rich style strings).  Each has a word beside it in the output.
S_PROTO = "bold"
S_ADDR = "bold cyan"
S_SCHED = "green"
S_FLAGS = "magenta"
S_PERSIST = "yellow"
S_WARN = "bold red"
S_DRAIN = "yellow"
S_DRAIN_ROW = "dim"
S_TOTAL = "bold"

GAP = 2  # cells between two columns

_UNITS = ("", "K", "M", "G", "T", "P", "E")


# --------------------------------------------------------------------------
# Numbers and names
# --------------------------------------------------------------------------


def human(n: int | float, unit: str = "", exact: bool = False) -> str:
    """1234567 -> '1.2 M', 34000 with unit 'B/s' -> '34 KB/s' (powers of 1000).

    Below 1000 an integer is shown as it is ('532', '532 B'); a float
    (a rate computed over an interval) with one decimal below 10.
    ``exact`` shows every digit, grouped by thousands: '1,234,567'.
    """
    sep = " " if unit else ""
    if exact:
        return f"{round(n):,}{sep}{unit}"
    if n.__class__ is int and -1000 < n < 1000:  # the common case, at once
        return f"{n}{sep}{unit}"
    v = float(n)
    if abs(v) < 1000:
        if isinstance(n, int):
            return f"{n}{sep}{unit}"
        return (f"{v:.1f}" if abs(v) < 10 and v != 0 else f"{v:.0f}") + f"{sep}{unit}"
    i = 0
    while abs(v) >= 1000 and i < len(_UNITS) - 1:
        v /= 1000.0
        i += 1
    text = f"{v:.1f}" if abs(v) < 10 else f"{v:.0f}"
    if text in ("1000", "-1000") and i < len(_UNITS) - 1:  # 999.96 K is 1.0 M
        v /= 1000.0
        i += 1
        text = f"{v:.1f}"
    return f"{text} {_UNITS[i]}{unit}"


def forward_label(d: m.Destination) -> str:
    """'Masq', 'Route', 'Tunnel ipip', 'Tunnel gue:6080 csum', 'Tunnel gre nocsum'."""
    name = v.FORWARDS.name(d.fwd, str(d.fwd))
    if d.fwd != m.FWD_TUNNEL:
        return name
    tun = v.TUNNELS.name(d.tun_type, str(d.tun_type))
    csum = v.CHECKSUMS.name(d.tun_flags, str(d.tun_flags))
    if d.tun_type == m.TUN_IPIP:
        return f"{name} {tun}"
    if d.tun_type == m.TUN_GUE:
        return f"{name} {tun}:{d.tun_port} {csum}"
    return f"{name} {tun} {csum}"


def thresholds_label(d: m.Destination) -> str:
    if not d.u_threshold and not d.l_threshold:
        return "-"
    return f"{d.u_threshold or '-'}/{d.l_threshold or '-'}"


# --------------------------------------------------------------------------
# The list view
# --------------------------------------------------------------------------


def service_heading(svc: m.Service, dests) -> list[list[tuple[str, str | None]]]:
    """The heading of one service as parts (see layout.heading)."""
    from ipvsctl.render.text import persistence_mask, sched_flag_names

    k = svc.key
    if k.fwmark:
        parts = [[("FWM", S_PROTO), (" ", None),
                  (str(k.fwmark) + (" IPv6" if k.af == m.AF_INET6 else ""), S_ADDR)]]
    else:
        parts = [[(v.PROTOCOLS.name(k.protocol, str(k.protocol)), S_PROTO), (" ", None),
                  (host_port(k.af, k.addr, k.port), S_ADDR)]]
    sched = [(svc.scheduler, S_SCHED)]
    flags = sched_flag_names(svc)
    if flags:
        sched.append((f" ({flags})", S_FLAGS))
    parts.append(sched)
    if svc.flags & m.SVC_F_PERSISTENT:
        persist = f"persistent {svc.timeout}s"
        mask = persistence_mask(svc)
        if mask:
            persist += f" mask {'/' if k.af == m.AF_INET6 else ''}{mask}"
        parts.append([(persist, S_PERSIST)])
    if svc.pe_name:
        parts.append([(f"pe {svc.pe_name}", S_PERSIST)])
    if svc.flags & m.SVC_F_ONEPACKET:
        parts.append([("one-packet", S_FLAGS)])
    if not dests:
        parts.append([(NO_SERVERS, S_WARN)])
    elif _all_draining(dests):
        parts.append([(ALL_DRAINING, S_WARN)])
    return parts


def _all_draining(dests) -> bool:
    if isinstance(dests, DestinationRows):
        return not any(dests.weights())
    return all(d.weight == 0 for d in dests)


# (header, Stats attribute, unit shown in a scaled cell, how early the column
# is left out on a narrow screen: the highest first, 0 never)
_STATS_COLUMNS = (("Conns", "conns", "", 0), ("In pkts", "inpkts", "", 7),
                  ("Out pkts", "outpkts", "", 8), ("In bytes", "inbytes", "B", 5),
                  ("Out bytes", "outbytes", "B", 6))
_RATE_COLUMNS = (("Conn/s", "cps", "", 0), ("In pkt/s", "inpps", "", 7),
                 ("Out pkt/s", "outpps", "", 8), ("In B/s", "inbps", "B/s", 5),
                 ("Out B/s", "outbps", "B/s", 6))

_SERVER = Column("Real server", right=False)
_PLAIN_COLUMNS = (_SERVER, Column("Forward", right=False, wrap=True, drop=4),
                  Column("Weight", wrap=True), Column("Thresh u/l", drop=5),
                  Column("Active", drop=2), Column("Inactive", drop=3))
_PERSIST_COLUMNS = _PLAIN_COLUMNS + (Column("Persist", drop=6),)


_COUNTER_COLUMNS: dict[tuple, tuple[Column, ...]] = {}


def _columns(svc: m.Service, counters) -> tuple[Column, ...]:
    """The columns of one service's table (one tuple per kind of table, so
    that tables of one kind share their layout)."""
    if counters:
        cols = _COUNTER_COLUMNS.get(counters)
        if cols is None:
            cols = _COUNTER_COLUMNS[counters] = (_SERVER, Column("Weight", wrap=True, drop=4)) + tuple(
                Column(title, drop=drop) for title, _, _, drop in counters)
        return cols
    if svc.flags & m.SVC_F_PERSISTENT:
        return _PERSIST_COLUMNS
    return _PLAIN_COLUMNS


_DRAIN_MARK = (S_DRAIN_ROW, {1: (S_DRAIN, DRAINING)})
_DRAIN_MARK_PLAIN = (S_DRAIN_ROW, {2: (S_DRAIN, DRAINING)})
_DRAINING_WEIGHT = "0 " + DRAINING


class _Cells:
    """The cells a listing draws, each made once for equal inputs: the
    counters of a real server (often all zero) by their values, the cells
    after the address of a DestinationRows server by its settings tuple."""

    def __init__(self, counters, exact: bool):
        from operator import attrgetter

        self.read = attrgetter(*(attr for _, attr, _, _ in counters)) if counters else None
        self.units = ["" if exact else unit for _, _, unit, _ in counters]
        self.exact = [exact] * len(counters)
        self.counters: dict[tuple, tuple] = {}
        self.plain = {False: _PlainCells(False), True: _PlainCells(True)}
        self.zero = m.Stats()

    def values(self, st) -> tuple[str, ...]:
        raw = self.read(st or self.zero)
        cells = self.counters.get(raw)
        if cells is None:
            cells = self.counters[raw] = tuple(map(human, raw, self.units, self.exact))
        return cells


def _rows(svc: m.Service, dests, counters, cells: _Cells):
    """(rows, marks, totals): the cells of each real server, the style of
    the drained ones (else None), and the totals row (or None)."""
    rows, marks = [], None
    persistent = bool(svc.flags & m.SVC_F_PERSISTENT)
    if counters:
        values = cells.values
        for i, d in enumerate(dests):
            weight = d.weight
            rows.append((host_port(d.af, d.addr, d.port),
                         _DRAINING_WEIGHT if weight == 0 else str(weight)) + values(d.stats))
            if weight == 0:
                marks = marks or [None] * len(dests)
                marks[i] = _DRAIN_MARK
        totals = ("service total", "") + values(svc.stats)
        return rows, marks, totals
    if isinstance(dests, DestinationRows):
        return _rows_of_columns(dests, cells.plain[persistent])
    for i, d in enumerate(dests):
        weight = d.weight
        row = (host_port(d.af, d.addr, d.port), forward_label(d),
               _DRAINING_WEIGHT if weight == 0 else str(weight), thresholds_label(d),
               str(d.active_conns), str(d.inact_conns))
        if persistent:
            row += (str(d.persist_conns),)
        rows.append(row)
        if weight == 0:
            marks = marks or [None] * len(dests)
            marks[i] = _DRAIN_MARK_PLAIN
    return rows, marks, None


class _PlainCells(dict):
    """DestinationRows settings tuple -> the cells after the address, each
    made once (a big table has few distinct settings)."""

    def __init__(self, persistent: bool):
        super().__init__()
        self.persistent = persistent

    def __missing__(self, settings: tuple) -> tuple:
        d = DestinationRows.settings_dest(settings)
        cells = (forward_label(d), _DRAINING_WEIGHT if d.weight == 0 else str(d.weight),
                 thresholds_label(d), str(d.active_conns), str(d.inact_conns))
        if self.persistent:
            cells += (str(d.persist_conns),)
        self[settings] = cells
        return cells


def _rows_of_columns(rows: DestinationRows, cells: _PlainCells):
    """_rows for a DestinationRows (IPv4, no counters), from its columns:
    no Destination per server."""
    tails = map(cells.__getitem__, rows.settings)
    out = [(name,) + tail for name, tail in zip(rows.names(), tails)]
    marks = None
    if not all(rows.weights()):
        marks = [None if weight else _DRAIN_MARK_PLAIN for weight in rows.weights()]
    return out, marks, None


class _Table:
    __slots__ = ("heading", "columns", "rows", "marks", "totals", "measured", "natural")


def _tables(table, counters, exact):
    cells = _Cells(counters, exact)
    out = []
    for svc, dests in table:
        t = _Table()
        t.heading = service_heading(svc, dests)
        t.columns = _columns(svc, counters)
        if dests or counters:
            t.rows, t.marks, t.totals = _rows(svc, dests, counters, cells)
            t.measured = t.rows + [t.totals] if t.totals else t.rows
            if not dests:
                t.measured = t.measured + [(NO_SERVERS,) + ("",) * (len(t.columns) - 1)]
            t.natural = measure(t.columns, t.measured)
        else:
            t.rows, t.marks, t.totals, t.measured, t.natural = [], None, None, [], []
        out.append(t)
    return out


def _shared_layouts(tables, width: int) -> dict | None:
    """One layout per kind of table, with the widest cells of all tables of
    every kind; None when one of them is wider than ``width``."""
    widest: dict[str, int] = {}
    kinds = {}
    for t in tables:
        if t.natural:
            kinds[t.columns] = None
            for col, w in zip(t.columns, t.natural):
                if w > widest.get(col.title, 0):
                    widest[col.title] = w
    for columns in kinds:
        layout = Layout(columns, list(range(len(columns))), [widest[c.title] for c in columns], 2, [])
        if layout.total > width:
            return None
        kinds[columns] = layout
    return kinds


def list_lines(table, out: Out, stats: bool = False, rate: bool = False,
               exact: bool = False) -> list[str]:
    """Everything ``ipvsctl list`` prints, as lines (without newlines)."""
    counters = (_STATS_COLUMNS if stats else ()) + (_RATE_COLUMNS if rate else ())
    return tables_lines(_tables(table, counters, exact), out, "no virtual services")


def table_of(heading, columns, rows, marks=None, totals=None) -> _Table:
    """A table for tables_lines, from another view (``ipvsctl conns``):
    ``heading`` as parts (layout.heading), ``rows`` tuples of str, ``marks``
    as layout.lines takes them, ``totals`` a last row under a second rule."""
    t = _Table()
    t.heading, t.columns, t.rows, t.marks, t.totals = heading, columns, rows, marks, totals
    t.measured = rows + [totals] if totals else rows
    t.natural = measure(columns, t.measured)
    return t


def tables_lines(tables, out: Out, nothing: str) -> list[str]:
    """A heading and a table per entry of ``tables`` (see _tables), as lines.

    The tables share their column widths when all of them fit the width
    that way, so that they line up; otherwise each table is fitted on its
    own, and only the tables that need it wrap, close up or leave columns
    out.  Columns left out are named once, at the end.  ``nothing``: what
    to say (dim) when there is no table.
    """
    shared = _shared_layouts(tables, out.width)
    result: list[str] = []
    add, extend = result.append, result.extend
    dropped: list[str] = []
    for i, t in enumerate(tables):
        if i:
            add("")
        if t.heading is not None:
            extend(heading(t.heading, out))
        if not t.natural:
            continue
        if shared is not None:
            layout = shared[t.columns]
        else:
            layout = fit(t.columns, t.natural, t.measured, out.width)
            for title in layout.dropped:
                if title not in dropped:
                    dropped.append(title)
        extend(header_lines(layout, out))
        add(rule(layout, out))
        if t.rows:
            extend(lines(layout, t.rows, out, t.marks, t.natural))
        else:
            empty = (NO_SERVERS,) + ("",) * (len(t.columns) - 1)
            extend(lines(layout, [empty], out, [(None, {0: (S_WARN, NO_SERVERS)})], t.natural))
        if t.totals:
            add(rule(layout, out))
            extend(lines(layout, [t.totals], out, [(S_TOTAL, None)], t.natural))
    if not tables:
        add(out.paint(nothing, "dim"))
    extend(left_out(dropped, out))
    return result


def left_out(dropped, out: Out) -> list[str]:
    """The note naming the columns left out to fit the width (none: no lines)."""
    if not dropped:
        return []
    return [""] + wrap_words(f"(left out to fit {out.width} columns: {', '.join(dropped)}; "
                             "a wider terminal or --width shows them)", out.width, out.ellipsis)


def render_text(table, width: int, color: bool = False, **modes) -> str:
    """The list view of ``table`` at a fixed width, as one string (tests, docs)."""
    out = Out(width=width, color=color)
    return "".join(line + "\n" for line in list_lines(table, out, **modes))
