"""The table for people: ``ipvsctl list`` as rich tables.

Strategy: pure functions from model values to rich renderables; the caller
owns the Console (and so the width, the colours and the file).  One heading
line per virtual service (protocol, address, scheduler and its flags,
persistence, one-packet scheduling) and under it one table of its real
servers.  Whatever colour shows, the words show too: a draining real server
(weight 0) says "draining" in its weight cell, a service without real
servers says "no real servers", so the view reads the same in a pipe, with
``--no-color`` or ``NO_COLOR``, and on a terminal.

Counters are shown scaled for people (``1.2 M``, ``34 KB/s``) unless
``--exact`` asks for every digit.  Addresses are always numeric: a table
for people should not wait on DNS.

rich is imported inside the functions that draw, never at module level, so
the filters here cost nothing to import.
"""

from __future__ import annotations

import socket

from ipvsctl import model as m

PROTO_LABELS = {m.IPPROTO_TCP: "TCP", m.IPPROTO_UDP: "UDP", m.IPPROTO_SCTP: "SCTP"}
FORWARD_LABELS = {m.FWD_MASQ: "Masq", m.FWD_LOCAL: "Local", m.FWD_TUNNEL: "Tunnel",
                  m.FWD_ROUTE: "Route", m.FWD_BYPASS: "Bypass"}
CHECKSUM_LABELS = {m.TUN_F_NOCSUM: "nocsum", m.TUN_F_CSUM: "csum", m.TUN_F_REMCSUM: "remcsum"}

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


def host_port(af: int, addr: str | None, port: int) -> str:
    return f"[{addr}]:{port}" if af == m.AF_INET6 else f"{addr}:{port}"


def service_label(key: m.ServiceKey) -> str:
    """'TCP 192.0.2.1:80', 'UDP [2001:db8::1]:53', 'FWM 5', 'FWM 7 IPv6'."""
    if key.fwmark:
        return f"FWM {key.fwmark}" + (" IPv6" if key.af == m.AF_INET6 else "")
    proto = PROTO_LABELS.get(key.protocol, str(key.protocol))
    return f"{proto} {host_port(key.af, key.addr, key.port)}"


def forward_label(d: m.Destination) -> str:
    """'Masq', 'Route', 'Tunnel ipip', 'Tunnel gue:6080 csum', 'Tunnel gre nocsum'."""
    name = FORWARD_LABELS.get(d.fwd, str(d.fwd))
    if d.fwd != m.FWD_TUNNEL:
        return name
    tun = m.TUN_NAMES[d.tun_type] if 0 <= d.tun_type < len(m.TUN_NAMES) else str(d.tun_type)
    csum = CHECKSUM_LABELS.get(d.tun_flags, str(d.tun_flags))
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
# Filters (shared by list, list --json and watch)
# --------------------------------------------------------------------------


def normalize_address(text: str) -> str:
    """Canonical text of an IPv4/IPv6 address ('[2001:DB8::1]' -> '2001:db8::1').

    Raises ValueError for anything else.
    """
    t = text.strip()
    if t.startswith("[") and t.endswith("]"):
        t = t[1:-1]
    for af in (m.AF_INET, m.AF_INET6):
        try:
            return socket.inet_ntop(af, socket.inet_pton(af, t))
        except OSError:
            continue
    raise ValueError(f"not an IPv4 or IPv6 address: {text!r}")


def filter_table(table, key: m.ServiceKey | None = None, protocol: str | None = None,
                 address: str | None = None):
    """Keep what the filters name.

    ``key``: that one service.  ``protocol``: 'tcp', 'udp', 'sctp' or
    'fwmark'.  ``address`` (canonical text): services whose virtual address
    it is (with all their real servers), and services that have it as a
    real server (with only the matching real servers).
    """
    protocols = {"tcp": m.IPPROTO_TCP, "udp": m.IPPROTO_UDP, "sctp": m.IPPROTO_SCTP}
    out = []
    for svc, dests in table:
        k = svc.key
        if key is not None and k != key:
            continue
        if protocol is not None:
            if protocol == "fwmark":
                if not k.fwmark:
                    continue
            elif k.fwmark or k.protocol != protocols[protocol]:
                continue
        if address is not None and k.addr != address:
            dests = [d for d in dests if d.addr == address]
            if not dests:
                continue
        out.append((svc, dests))
    return out


# --------------------------------------------------------------------------
# The list view
# --------------------------------------------------------------------------


def service_heading(svc: m.Service, dests: list[m.Destination]):
    from rich.text import Text

    from ipvsctl.render.text import persistence_mask, sched_flag_names

    k = svc.key
    t = Text()
    if k.fwmark:
        t.append("FWM", S_PROTO)
        t.append(" ")
        t.append(str(k.fwmark) + (" IPv6" if k.af == m.AF_INET6 else ""), S_ADDR)
    else:
        t.append(PROTO_LABELS.get(k.protocol, str(k.protocol)), S_PROTO)
        t.append(" ")
        t.append(host_port(k.af, k.addr, k.port), S_ADDR)
    t.append("  ")
    t.append(svc.scheduler, S_SCHED)
    flags = sched_flag_names(svc)
    if flags:
        t.append(f" ({flags})", S_FLAGS)
    if svc.flags & m.SVC_F_PERSISTENT:
        persist = f"persistent {svc.timeout}s"
        mask = persistence_mask(svc)
        if mask:
            persist += f" mask {'/' if k.af == m.AF_INET6 else ''}{mask}"
        t.append("  ")
        t.append(persist, S_PERSIST)
    if svc.pe_name:
        t.append(f"  pe {svc.pe_name}", S_PERSIST)
    if svc.flags & m.SVC_F_ONEPACKET:
        t.append("  one-packet", S_FLAGS)
    if not dests:
        t.append("  ")
        t.append(NO_SERVERS, S_WARN)
    elif all(d.weight == 0 for d in dests):
        t.append("  ")
        t.append(ALL_DRAINING, S_WARN)
    return t


def _weight_cell(d: m.Destination):
    from rich.text import Text

    if d.weight == 0:
        return Text.assemble("0 ", (DRAINING, S_DRAIN))
    return Text(str(d.weight))


# (header, Stats attribute, unit shown in a scaled cell)
_STATS_COLUMNS = (("Conns", "conns", ""), ("In pkts", "inpkts", ""), ("Out pkts", "outpkts", ""),
                  ("In bytes", "inbytes", "B"), ("Out bytes", "outbytes", "B"))
_RATE_COLUMNS = (("Conn/s", "cps", ""), ("In pkt/s", "inpps", ""), ("Out pkt/s", "outpps", ""),
                 ("In B/s", "inbps", "B/s"), ("Out B/s", "outbps", "B/s"))

#: Table lines: a rule under the header and above the totals row, no frame.
_BOX = None


def _box():
    global _BOX
    if _BOX is None:
        from rich.box import Box

        _BOX = Box("    \n    \n ── \n    \n    \n ── \n    \n    \n")
    return _BOX


def _columns(svc: m.Service, counters) -> list[tuple[str, str]]:
    """(header, justify) of the columns of one service's table."""
    if counters:
        cols = [("Real server", "left"), ("Weight", "right")]
        return cols + [(title, "right") for title, _, _ in counters]
    cols = [("Real server", "left"), ("Forward", "left"), ("Weight", "right"),
            ("Thresh u/l", "right"), ("Active", "right"), ("Inactive", "right")]
    if svc.flags & m.SVC_F_PERSISTENT:
        cols.append(("Persist", "right"))
    return cols


def _rows(svc: m.Service, dests: list[m.Destination], counters, exact: bool):
    """The cells of each real server's row, and the totals row (or None)."""

    def values(st: m.Stats | None) -> list[str]:
        st = st or m.Stats()
        return [human(getattr(st, attr), "" if exact else unit, exact) for _, attr, unit in counters]

    rows = []
    for d in dests:
        row = [host_port(d.af, d.addr, d.port)]
        if counters:
            row += [_weight_cell(d)] + values(d.stats)
        else:
            row += [forward_label(d), _weight_cell(d), thresholds_label(d),
                    str(d.active_conns), str(d.inact_conns)]
            if svc.flags & m.SVC_F_PERSISTENT:
                row.append(str(d.persist_conns))
        rows.append(row)
    totals = ["service total", ""] + values(svc.stats) if counters else None
    return rows, totals


def service_table(svc: m.Service, dests: list[m.Destination], stats: bool = False,
                  rate: bool = False, exact: bool = False, widths: dict | None = None,
                  gap: int = GAP):
    """The real servers of one service as a rich Table (the heading is apart).

    The plain view: server, forwarding method, weight, thresholds (upper/lower),
    active and inactive connections (and persistent-connection templates for a
    persistent service).  With ``stats``/``rate`` the counters replace the
    connection columns, as ipvsadm's --stats/--rate do, and a footer holds the
    service's own totals.  ``widths`` (header -> cells, see column_widths)
    lines up the tables of several services.  None when there is nothing to
    show (a service without real servers, and no counters asked for).
    """
    from rich.table import Table
    from rich.text import Text

    counters = (_STATS_COLUMNS if stats else ()) + (_RATE_COLUMNS if rate else ())
    if not dests and not counters:
        return None
    rows, totals = _rows(svc, dests, counters, exact)
    widths = widths or {}
    # The box's column divider is one space; the padding adds the rest of the gap.
    table = Table(box=_box(), show_edge=False, pad_edge=False, padding=(0, gap - 1, 0, 0),
                  header_style="bold", show_footer=totals is not None, expand=False)
    for i, (title, justify) in enumerate(_columns(svc, counters)):
        footer = ""
        if totals is not None:
            footer = Text(totals[i], S_TOTAL)
        # Widths from column_widths: words wrap where that is allowed, and
        # what still does not fit folds (an address is never cut short).
        table.add_column(title, justify=justify, footer=footer, width=widths.get(title),
                         overflow="fold")
    if not dests:
        table.add_row(Text(NO_SERVERS, S_WARN), *[""] * (len(table.columns) - 1))
    for d, row in zip(dests, rows):
        table.add_row(*row, style=S_DRAIN_ROW if d.weight == 0 else None)
    return table


def _cell_text(cell) -> str:
    return cell if isinstance(cell, str) else cell.plain


# Columns whose cells may wrap between words ("Tunnel gue:6080 csum",
# "0 draining"); numbers, addresses and thresholds never break inside.
_BREAKABLE = ("Forward", "Weight")


def _measure(title: str, cells) -> tuple[int, int, int]:
    """(natural, minimal, floor) width of a column: its widest line; the
    least it can take without breaking a word (headers may wrap between
    words); and the least it may be folded to: a whole header word, and
    for Forward and Weight a whole word of any cell ("draining")."""
    from rich.cells import cell_len

    texts = [_cell_text(c) for c in cells]
    natural = max([cell_len(title)] + [cell_len(t) for t in texts])
    floor = max([5] + [cell_len(w) for w in title.split()])
    minimal = floor
    for t in texts:
        words = t.split() if title in _BREAKABLE else [t]
        minimal = max([minimal] + [cell_len(w) for w in words])
    if title in _BREAKABLE:
        floor = minimal
    return natural, minimal, floor


def fit_widths(measures, max_width: int, gap: int = GAP) -> list[int]:
    """Column widths within ``max_width`` (``measures``: see _measure).

    Natural widths when they fit.  Else, first, words wrap: the column with
    the most room above its longest word gives way first (headers, tunnel
    details, "0 draining").  If that is not enough, the widest column folds
    one cell at a time (so what is folded is what is longest), never below
    12 cells for the first column (addresses) nor below its floor for the
    others.  The result exceeds ``max_width`` only when nothing can give way.
    """
    measures = [tuple(mm) + (5,) * (3 - len(mm)) for mm in measures]
    if not measures:
        return []
    widths = [mm[0] for mm in measures]
    budget = max_width - gap * (len(widths) - 1)
    while sum(widths) > budget:
        slack = [(w - mm[1], i) for i, (mm, w) in enumerate(zip(measures, widths)) if i and w > mm[1]]
        if not slack:
            break
        _, i = max(slack)
        widths[i] -= 1
    floors = [min(12, measures[0][0])] + [mm[2] for mm in measures[1:]]
    while sum(widths) > budget:
        # widest first; on a tie the rightmost, so an address folds last
        foldable = [(w, i) for i, w in enumerate(widths) if w > floors[i]]
        if not foldable:
            break
        _, i = max(foldable)
        widths[i] -= 1
    return widths


def fit(measures, max_width: int) -> tuple[list[int], int]:
    """(widths, gap): two cells between columns, or one when that is what fits."""
    widths = fit_widths(measures, max_width, GAP)
    if sum(widths) + GAP * (len(widths) - 1) > max_width:
        narrow = fit_widths(measures, max_width, 1)
        if sum(narrow) + len(narrow) - 1 < sum(widths) + GAP * (len(widths) - 1):
            return narrow, 1
    return widths, GAP


def column_widths(table, stats: bool = False, rate: bool = False, exact: bool = False,
                  max_width: int = 10**6) -> tuple[dict, int]:
    """(header -> width, gap), shared by every service's table so that they line up."""
    counters = (_STATS_COLUMNS if stats else ()) + (_RATE_COLUMNS if rate else ())
    titles: list[str] = []
    cells: dict[str, list] = {}
    for svc, dests in table:
        cols = _columns(svc, counters)
        for title, _ in cols:
            if title not in cells:
                titles.append(title)
                cells[title] = []
        rows, totals = _rows(svc, dests, counters, exact)
        if not dests:
            rows = rows + [[NO_SERVERS]]
        for row in rows + ([totals] if totals else []):
            for (title, _), cell in zip(cols, row):
                cells[title].append(cell)
    measures = [_measure(t, cells[t]) for t in titles]
    widths, gap = fit(measures, max_width)
    return dict(zip(titles, widths)), gap


class ListView:
    """Everything ``ipvsctl list`` shows, as one renderable.

    Column widths are computed once for the whole table (so the services'
    tables line up) and fitted to the width rich offers.
    """

    def __init__(self, table, stats: bool = False, rate: bool = False, exact: bool = False):
        self.table = table
        self.stats, self.rate, self.exact = stats, rate, exact

    def __rich_console__(self, console, options):
        from rich.text import Text

        widths, gap = column_widths(self.table, self.stats, self.rate, self.exact, options.max_width)
        for i, (svc, dests) in enumerate(self.table):
            if i:
                yield Text("")
            yield service_heading(svc, dests)
            t = service_table(svc, dests, self.stats, self.rate, self.exact, widths, gap)
            if t is not None:
                yield t
        if not self.table:
            yield Text("no virtual services", "dim")


def list_view(table, stats: bool = False, rate: bool = False, exact: bool = False) -> ListView:
    return ListView(table, stats, rate, exact)


# --------------------------------------------------------------------------
# Consoles
# --------------------------------------------------------------------------


def make_console(file=None, width: int | None = None, color: bool | None = None):
    """A Console on ``file``: colour only on a terminal, never with color=False.

    rich itself honours NO_COLOR and TERM=dumb, and falls back to ASCII box
    characters when the terminal's encoding is not UTF-8.  Off a terminal the
    width is ``width``, else $COLUMNS, else 80.
    """
    from rich.console import Console

    kwargs = {}
    if color is False:
        kwargs["color_system"] = None
        kwargs["no_color"] = True
    elif color is True:
        kwargs["force_terminal"] = True
    return Console(file=file, width=width, highlight=False, emoji=False, markup=False,
                   soft_wrap=False, **kwargs)


def render_text(renderable, width: int, color: bool = False) -> str:
    """The renderable as a string at a fixed width (tests, docs)."""
    import io

    buf = io.StringIO()
    console = make_console(buf, width=width, color=color)
    if color:
        console = make_console(buf, width=width, color=True)
    console.print(renderable)
    return buf.getvalue()
