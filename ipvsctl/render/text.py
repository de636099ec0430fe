"""ipvsadm's text output, byte for byte.

Strategy: pure functions from model objects to lines of text.  Each format
string reproduces the printf format of ipvsadm 1.31 (widths, padding and
trailing spaces included); the only deliberate difference is that fwmarks are
printed unsigned (ipvsadm prints marks of 2^31 and above as negative numbers,
which its own -R cannot read back) and that -S keeps -x/-y thresholds.
Listing large tables is a hot path: lines are built with %-formatting into a
list and joined once.
"""

from __future__ import annotations

from itertools import islice, repeat

from ipvsctl import model as m
from ipvsctl import vocab as v
from ipvsctl.render.format import Format
from ipvsctl.names import addr_port
from ipvsctl.netlink.rows import DestinationRows

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: collections.abc imports collections (start-up time)
    from collections.abc import Iterator


def header(info: m.Info) -> str:
    return "IP Virtual Server version %s (size=%d)\n" % (info.version_text, info.conn_tab_size)


def title(fmt: Format) -> str:
    if fmt.stats:
        return ("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n"
                % ("Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"))
    if fmt.rate:
        return ("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n"
                % ("Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"))
    if fmt.thresholds:
        return ("%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n"
                % ("Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"))
    if fmt.persistent_conn:
        return ("%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n"
                % ("Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"))
    if fmt.tun_info:
        return ("Prot LocalAddress:Port Scheduler Flags\n"
                "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
    if fmt.rule:
        return ""
    return ("Prot LocalAddress:Port Scheduler Flags\n"
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")


def largenum(n: int, exact: bool) -> str:
    """ipvsadm's print_largenum: 9 columns, scaled by 1000s unless --exact."""
    if exact:
        s = "%d" % n
        return s.rjust(9 if len(s) <= 8 else len(s) + 1)
    if n < 100_000_000:
        return "%9d" % n
    if n < 1_000_000_000:
        return "%8dK" % (n // 1000)
    if n < 100_000_000_000:
        return "%8dM" % (n // 1_000_000)
    if n < 100_000_000_000_000:
        return "%8dG" % (n // 1_000_000_000)
    return "%8dT" % (n // 1_000_000_000_000)


def sched_flag_names(svc: m.Service) -> str:
    return ",".join(v.sched_flag_names(svc.scheduler, svc.flags))


def ipv4_mask_text(mask: int) -> str:
    return "%d.%d.%d.%d" % (mask >> 24 & 255, mask >> 16 & 255, mask >> 8 & 255, mask & 255)


def service_name(svc: m.Service, fmt: Format) -> str:
    k = svc.key
    if k.fwmark:
        if fmt.rule:
            return "-f %d -6" % k.fwmark if k.af == m.AF_INET6 else "-f %d" % k.fwmark
        return "FWM  %d IPv6" % k.fwmark if k.af == m.AF_INET6 else "FWM  %d" % k.fwmark
    vname = addr_port(k.af, k.addr, k.port, k.protocol, fmt.numeric)
    if fmt.rule:
        return "%s %s" % (v.PROTOCOLS.rule(k.protocol, "--xxx-service"), vname)
    name = "%-4s %s" % (v.PROTOCOLS.label(k.protocol, "?"), vname)
    return name if k.af == m.AF_INET6 else name[:33]


def persistence_mask(svc: m.Service) -> str | None:
    """The persistence mask as ipvsadm shows it, None when it is the full one."""
    if svc.key.af == m.AF_INET6:
        return None if svc.netmask == 128 else "%d" % svc.netmask
    return None if svc.netmask == m.IPV4_FULL_MASK else ipv4_mask_text(svc.netmask)


def _service_line(svc: m.Service, name: str, fmt: Format) -> str:
    mask = persistence_mask(svc) if svc.flags & m.SVC_F_PERSISTENT else None
    if fmt.rule:
        parts = ["-A %s -s %s" % (name, svc.scheduler)]
        if svc.flags & m.SVC_F_PERSISTENT:
            parts.append(" -p %d" % svc.timeout)
        if mask:
            parts.append(" -M %s" % mask)
        if svc.pe_name:
            parts.append(" --pe %s" % svc.pe_name)
        if svc.flags & m.SVC_F_ONEPACKET:
            parts.append(" -o")
        if svc.flags & m.SVC_F_SCHED_MASK:
            parts.append(" -b %s" % sched_flag_names(svc))
        return "".join(parts)
    if fmt.stats or fmt.rate:
        st = svc.stats or m.Stats()
        values = ((st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes) if fmt.stats
                  else (st.cps, st.inpps, st.outpps, st.inbps, st.outbps))
        return "%-33s" % name + "".join(largenum(v, fmt.exact) for v in values)
    parts = ["%s %s" % (name, svc.scheduler)]
    if svc.flags & m.SVC_F_SCHED_MASK:
        parts.append(" (%s)" % sched_flag_names(svc))
    if svc.flags & m.SVC_F_PERSISTENT:
        parts.append(" persistent %d" % svc.timeout)
        if mask:
            parts.append(" mask %s" % mask)
        if svc.pe_name:
            parts.append(" pe %s" % svc.pe_name)
    if svc.flags & m.SVC_F_ONEPACKET:
        parts.append(" ops")
    return "".join(parts)


def tunnel_info(d: m.Destination) -> str:
    """--tun-info's column: ipip, gue:PORT:CSUM, gre:CSUM, or n/a."""
    kind = v.TUNNELS.label(d.tun_type) if d.fwd == m.FWD_TUNNEL else None
    if kind is None:
        return "n/a"
    if d.tun_type == m.TUN_GUE:
        return "%s:%d:%s" % (kind, d.tun_port, v.CHECKSUMS.label(d.tun_flags, "?"))
    if d.tun_type == m.TUN_GRE:
        return "%s:%s" % (kind, v.CHECKSUMS.label(d.tun_flags, "?"))
    return kind


def _dest_line(svc: m.Service, svc_name: str, d: m.Destination, fmt: Format) -> str:
    dname = addr_port(d.af, d.addr, d.port, svc.key.protocol, fmt.numeric)
    if fmt.rule:
        return "-a %s -r %s%s" % (svc_name, dname, _rule_tail(
            d.fwd, d.weight, d.tun_type, d.tun_port, d.tun_flags, d.u_threshold, d.l_threshold))
    if d.af != m.AF_INET6:
        dname = dname[:28]
    if fmt.stats:
        st = d.stats or m.Stats()
        return "  -> %-28s" % dname + "".join(
            largenum(v, fmt.exact) for v in (st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes))
    if fmt.rate:
        st = d.stats or m.Stats()
        return ("  -> %-28s %8d %8d %8d" % (dname, st.cps, st.inpps, st.outpps)
                + largenum(st.inbps, fmt.exact) + largenum(st.outbps, fmt.exact))
    if fmt.thresholds:
        return "  -> %-28s %-10d %-10d %-10d %-10d" % (
            dname, d.u_threshold, d.l_threshold, d.active_conns, d.inact_conns)
    if fmt.persistent_conn:
        return "  -> %-28s %-9d %-11d %-10d %-10d" % (
            dname, d.weight, d.persist_conns, d.active_conns, d.inact_conns)
    if fmt.tun_info:
        return "  -> %-28s %-7s %-13s %-6d %-10d %-10d" % (
            dname, v.FORWARDS.label(d.fwd, v.NULL), tunnel_info(d), d.weight,
            d.active_conns, d.inact_conns)
    return "  -> %-28s%s" % (dname, _plain_tail(d.fwd, d.weight, d.active_conns, d.inact_conns))


def _rule_tail(fwd: int, weight: int, tun_type: int, tun_port: int, tun_flags: int,
               u_threshold: int, l_threshold: int) -> str:
    """What follows the address in a -S real-server line."""
    line = " %s -w %d" % (v.FORWARDS.rule(fwd, v.NULL), weight)
    if fwd == m.FWD_TUNNEL:
        if tun_type == m.TUN_GRE:
            line += " --tun-type gre %s" % v.CHECKSUMS.rule(tun_flags, "?")
        elif tun_type == m.TUN_GUE:
            line += " --tun-type gue --tun-port %d %s" % (tun_port, v.CHECKSUMS.rule(tun_flags, "?"))
        elif tun_type == m.TUN_IPIP:
            line += " --tun-type ipip"
    # ipvsadm -S drops thresholds, so a save/restore cycle loses them; we keep them.
    if u_threshold:
        line += " -x %d" % u_threshold
    if l_threshold:
        line += " -y %d" % l_threshold
    return line


def _plain_tail(fwd: int, weight: int, active_conns: int, inact_conns: int) -> str:
    """What follows the padded address in a plain -L real-server line."""
    return " %-7s %-6d %-10d %-10d" % (v.FORWARDS.label(fwd, v.NULL), weight, active_conns, inact_conns)


class _Tails(dict):
    """DestinationRows settings tuple -> its line tail, each made once."""

    def __init__(self, rule: bool):
        super().__init__()
        self.rule = rule

    def __missing__(self, settings: tuple) -> str:
        d = DestinationRows.settings_dest(settings)
        if self.rule:
            tail = _rule_tail(d.fwd, d.weight, d.tun_type, d.tun_port, d.tun_flags, d.u_threshold,
                              d.l_threshold)
        else:
            tail = _plain_tail(d.fwd, d.weight, d.active_conns, d.inact_conns)
        self[settings] = tail
        return tail


#: Real-server lines per piece of a big listing's text (see _rows_text).
_LINES_PER_PIECE = 256


def _rows_text(rows: DestinationRows, svc_name: str, fmt: Format, tails: _Tails | None = None
               ) -> Iterator[str]:
    """The real-server lines of plain -Ln/-Sn straight from the columns, in
    pieces of _LINES_PER_PIECE lines, each ending with a newline.

    Every step is a C-level map over the columns: format each
    "a.b.c.d:port" with one % (DestinationRows.names), pad it, add the tail
    made once per distinct settings tuple (``tails``: shared by the
    services of one table), join.  Same text as _dest_line (tested line for
    line against it).  Lazy, so that a 20,000-server listing never holds
    more than one piece of text besides the columns.
    """
    if not len(rows):
        return iter(())
    head = "-a %s -r " % svc_name if fmt.rule else "  -> "
    return _pieces(head, _row_lines(rows, fmt, tails or _Tails(fmt.rule)))


def _row_lines(rows: DestinationRows, fmt: Format, tails: _Tails) -> Iterator[str]:
    """Each real server's line of plain -Ln/-Sn without its head ("  -> ",
    "-a SERVICE -r ")."""
    names = rows.names()
    tail = map(tails.__getitem__, rows.settings)
    if fmt.rule:
        return map(str.__add__, names, tail)
    return map(str.__add__, map(str.ljust, names, repeat(28)), tail)


def _pieces(head: str, lines: Iterator[str]) -> Iterator[str]:
    sep = "\n" + head
    while True:
        piece = list(islice(lines, _LINES_PER_PIECE))
        if not piece:
            return
        yield head + sep.join(piece) + "\n"


def _plain(fmt: Format) -> bool:
    """Whether real-server lines can come straight from DestinationRows."""
    return fmt.numeric and not (fmt.stats or fmt.rate or fmt.thresholds or fmt.persistent_conn
                                or fmt.tun_info)


def service_text(svc: m.Service, dests, fmt: Format) -> Iterator[str]:
    """A service's lines and its real servers' lines, in the order given
    (listing.table puts them in ipvsadm's), in pieces of text that each end
    with a newline (``dests``: a list of Destination or DestinationRows)."""
    name = service_name(svc, fmt)
    yield _service_line(svc, name, fmt) + "\n"
    if _plain(fmt) and isinstance(dests, DestinationRows):
        yield from _rows_text(dests, name, fmt)
        return
    if dests:
        yield "\n".join([_dest_line(svc, name, d, fmt) for d in dests]) + "\n"


def table_text(table, fmt: Format) -> Iterator[str]:
    """Every service's lines (service_text's, service after service) in one
    pass, in pieces of about _LINES_PER_PIECE lines.

    A table of many small services (10,000 services of 10 real servers) is
    drawn at the cost of its lines, not of its services: the tails of equal
    settings are made once for the whole table, a small service's lines join
    the piece being filled instead of making pieces of their own, and only a
    big service's real servers are drawn lazily, piece by piece.
    """
    plain = _plain(fmt)
    tails = _Tails(fmt.rule)
    lines: list[str] = []
    add, grow = lines.append, lines.extend
    small: list = []  # consecutive small services in columns: (service line, name, rows), drawn together
    servers = 0
    for svc, dests in table:
        name = service_name(svc, fmt)
        if plain and isinstance(dests, DestinationRows) and len(dests) <= _LINES_PER_PIECE:
            small.append((_service_line(svc, name, fmt), name, dests))
            servers += len(dests)
            if servers >= _LINES_PER_PIECE:
                _draw_small(small, fmt, tails, lines)
                yield "\n".join(lines) + "\n"
                lines.clear()
                small.clear()
                servers = 0
            continue
        if small:
            _draw_small(small, fmt, tails, lines)
            small.clear()
            servers = 0
        add(_service_line(svc, name, fmt))
        if plain and isinstance(dests, DestinationRows):
            yield "\n".join(lines) + "\n"
            lines.clear()
            yield from _rows_text(dests, name, fmt, tails)
            continue
        if dests:
            grow([_dest_line(svc, name, d, fmt) for d in dests])
        if len(lines) >= _LINES_PER_PIECE:
            yield "\n".join(lines) + "\n"
            lines.clear()
    if small:
        _draw_small(small, fmt, tails, lines)
    if lines:
        yield "\n".join(lines) + "\n"


def _draw_small(small: list, fmt: Format, tails: _Tails, lines: list) -> None:
    """Append the lines of consecutive small services in columns
    ((service line, name, DestinationRows) each) to ``lines``: their
    servers' names formatted as one set of columns (DestinationRows.names
    over the joined planes: its constant-byte shortcut then spans services),
    one % per server line, each service's line before its servers'."""
    planes = tuple(b"".join([rows.planes[i] for _l, _n, rows in small]) for i in range(6))
    names = DestinationRows.names_of(planes)
    settings = [s for _l, _n, rows in small for s in rows.settings]
    if fmt.rule:
        heads = [("-a %s -r " % name,) * len(rows) for _l, name, rows in small]
        body = list(map("%s%s%s".__mod__, zip([h for hs in heads for h in hs], names,
                                                map(tails.__getitem__, settings))))
    else:
        body = list(map("  -> %-28s%s".__mod__, zip(names, map(tails.__getitem__, settings))))
    add, grow = lines.append, lines.extend
    pos = 0
    for line, _name, rows in small:
        add(line)
        end = pos + len(rows)
        grow(body[pos:end])
        pos = end


def timeouts(t: m.Timeouts) -> str:
    return "Timeout (tcp tcpfin udp): %d %d %d\n" % (t.tcp, t.tcp_fin, t.udp)


def daemons(ds: list[m.Daemon]) -> str:
    lines = []
    for state in (m.DAEMON_MASTER, m.DAEMON_BACKUP):
        for d in ds:
            if d.state != state:
                continue
            s = "%s sync daemon (mcast=%s, syncid=%d" % (v.DAEMONS.label(state), d.mcast_ifn, d.syncid)
            if d.sync_maxlen:
                s += ", maxlen=%d" % d.sync_maxlen
            if d.mcast_group:
                s += ", group=%s" % d.mcast_group
            if d.mcast_port:
                s += ", port=%d" % d.mcast_port
            if d.mcast_ttl:
                s += ", ttl=%d" % d.mcast_ttl
            lines.append(s + ")\n")
    return "".join(lines)
