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

from ipvsctl import model as m
from ipvsctl.grammar import Format
from ipvsctl.names import addr_port, numeric_addr_port

FWD_NAMES = {m.FWD_MASQ: "Masq", m.FWD_LOCAL: "Local", m.FWD_TUNNEL: "Tunnel",
             m.FWD_ROUTE: "Route"}
FWD_SWITCHES = {m.FWD_MASQ: "-m", m.FWD_TUNNEL: "-i", m.FWD_LOCAL: "-g", m.FWD_ROUTE: "-g"}
TUN_FLAG_SHORT = ("-c", "+c", "r+c")
TUN_FLAG_OPTS = ("--tun-nocsum", "--tun-csum", "--tun-remcsum")
# The two real-server line formats that both the general and the fast
# listing path write (ipvsadm's -S line and its plain -L line).
_RULE_DEST = "-a %s -r %s %s -w %d"
_PLAIN_DEST = "  -> %-28s %-7s %-6d %-10d %-10d"
SERVICE_SWITCHES = {m.IPPROTO_TCP: "-t", m.IPPROTO_UDP: "-u", m.IPPROTO_SCTP: "--sctp-service"}


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
    f = svc.flags
    if svc.scheduler == "sh":
        names = (("sh-fallback", m.SVC_F_SCHED1), ("sh-port", m.SVC_F_SCHED2))
    elif svc.scheduler == "mh":
        names = (("mh-fallback", m.SVC_F_SCHED1), ("mh-port", m.SVC_F_SCHED2))
    else:
        names = (("flag-1", m.SVC_F_SCHED1), ("flag-2", m.SVC_F_SCHED2), ("flag-3", m.SVC_F_SCHED3))
    return ",".join(name for name, bit in names if f & bit)


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
        return "%s %s" % (SERVICE_SWITCHES.get(k.protocol, "--xxx-service"), vname)
    name = "%-4s %s" % (m.PROTOCOL_NAMES.get(k.protocol, "?"), vname)
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
    if d.fwd != m.FWD_TUNNEL:
        return "n/a"
    if d.tun_type == m.TUN_IPIP:
        return "ipip"
    if d.tun_type == m.TUN_GUE:
        return "gue:%d:%s" % (d.tun_port, TUN_FLAG_SHORT[d.tun_flags] if d.tun_flags < 3 else "?")
    if d.tun_type == m.TUN_GRE:
        return "gre:%s" % (TUN_FLAG_SHORT[d.tun_flags] if d.tun_flags < 3 else "?")
    return "n/a"


def _dest_line(svc: m.Service, svc_name: str, d: m.Destination, fmt: Format) -> str:
    dname = addr_port(d.af, d.addr, d.port, svc.key.protocol, fmt.numeric)
    if fmt.rule:
        line = _RULE_DEST % (svc_name, dname, FWD_SWITCHES.get(d.fwd, "(null)"), d.weight)
        if d.fwd == m.FWD_TUNNEL:
            if d.tun_type == m.TUN_GRE:
                line += " --tun-type gre %s" % TUN_FLAG_OPTS[d.tun_flags]
            elif d.tun_type == m.TUN_GUE:
                line += " --tun-type gue --tun-port %d %s" % (d.tun_port, TUN_FLAG_OPTS[d.tun_flags])
            elif d.tun_type == m.TUN_IPIP:
                line += " --tun-type ipip"
        # ipvsadm -S drops thresholds, so a save/restore cycle loses them; we keep them.
        if d.u_threshold:
            line += " -x %d" % d.u_threshold
        if d.l_threshold:
            line += " -y %d" % d.l_threshold
        return line
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
            dname, FWD_NAMES.get(d.fwd, "(null)"), tunnel_info(d), d.weight,
            d.active_conns, d.inact_conns)
    return _PLAIN_DEST % (
        dname, FWD_NAMES.get(d.fwd, "(null)"), d.weight, d.active_conns, d.inact_conns)


def service_block(svc: m.Service, dests: list[m.Destination], fmt: Format, out: list) -> None:
    """Append the service line and its real servers' lines to ``out``."""
    from ipvsctl.order import sort_destinations

    name = service_name(svc, fmt)
    out.append(_service_line(svc, name, fmt))
    if not fmt.nosort:
        dests = sort_destinations(dests)
    if fmt.numeric and not (fmt.stats or fmt.rate or fmt.thresholds or fmt.persistent_conn
                            or fmt.tun_info):
        # -Ln and -Sn of big tables: the same lines as _dest_line, built
        # without its per-line format dispatch and name look-ups.
        if fmt.rule:
            for d in dests:
                if d.fwd == m.FWD_TUNNEL or d.u_threshold or d.l_threshold:
                    out.append(_dest_line(svc, name, d, fmt))
                else:
                    out.append(_RULE_DEST % (
                        name, numeric_addr_port(d.af, d.addr, d.port),
                        FWD_SWITCHES.get(d.fwd, "(null)"), d.weight))
        else:
            for d in dests:
                dname = numeric_addr_port(d.af, d.addr, d.port)
                out.append(_PLAIN_DEST % (
                    dname[:28] if d.af != m.AF_INET6 else dname,
                    FWD_NAMES.get(d.fwd, "(null)"), d.weight, d.active_conns, d.inact_conns))
        return
    for d in dests:
        out.append(_dest_line(svc, name, d, fmt))


def timeouts(t: m.Timeouts) -> str:
    return "Timeout (tcp tcpfin udp): %d %d %d\n" % (t.tcp, t.tcp_fin, t.udp)


def daemons(ds: list[m.Daemon]) -> str:
    lines = []
    for state in (m.DAEMON_MASTER, m.DAEMON_BACKUP):
        for d in ds:
            if d.state != state:
                continue
            s = "%s sync daemon (mcast=%s, syncid=%d" % (
                "master" if state == m.DAEMON_MASTER else "backup", d.mcast_ifn, d.syncid)
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
