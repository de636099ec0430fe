"""`-L -c`: the connection table, read from /proc/net/ip_vs_conn.

IPVS has no netlink dump of connections; ipvsadm reads the proc file of the
current network namespace and reformats each line.  The kernel writes IPv4
addresses as 8 hex digits and IPv6 addresses as full colon text, ports as 4
hex digits, and, for connections made through a persistence engine, two more
fields (engine name and its data).
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py imports enum, functools, collections

from ipvsctl import model as m
from ipvsctl import vocab as v
from ipvsctl.names import addr_port


def _addr(word: str) -> tuple[int, str]:
    # ValueError: a NUL in the word (inet_pton takes a C string).
    try:
        return m.AF_INET6, socket.inet_ntop(m.AF_INET6, socket.inet_pton(m.AF_INET6, word))
    except (OSError, ValueError):
        pass
    try:
        socket.inet_pton(m.AF_INET, word)
        return m.AF_INET, word
    except (OSError, ValueError):
        pass
    try:
        value = int(word, 16) & 0xFFFFFFFF
    except ValueError:
        value = 0
    return m.AF_INET, socket.inet_ntoa(value.to_bytes(4, "big"))


def _hex(word: str) -> int:
    try:
        return int(word, 16) & 0xFFFF
    except ValueError:
        return 0


def parse_line(line: str) -> dict | None:
    """One proc line as a dict; None for a line ipvsadm would not print."""
    f = line.split()
    if len(f) < 9:
        return None
    caf, caddr = _addr(f[1])
    vaf, vaddr = _addr(f[3])
    daf, daddr = _addr(f[5])
    try:
        expires = int(f[8])
    except ValueError:
        expires = 0
    return {
        "protocol": f[0], "client_af": caf, "client": caddr, "client_port": _hex(f[2]),
        "virtual_af": vaf, "virtual": vaddr, "virtual_port": _hex(f[4]),
        "dest_af": daf, "dest": daddr, "dest_port": _hex(f[6]),
        "state": f[7], "expires": expires,
        "pe_name": f[9] if len(f) > 9 else None, "pe_data": f[10] if len(f) > 10 else None,
    }


def render_connections(raw: str, fmt) -> str:
    lines = raw.splitlines()
    out = ["IPVS connection entries"]
    if fmt.persistent_conn:
        out.append("pro expire %-11s %-18s %-18s %-18s %-16s %s"
                   % ("state", "source", "virtual", "destination", "pe name", "pe_data"))
    else:
        out.append("pro expire %-11s %-18s %-18s %s" % ("state", "source", "virtual", "destination"))
    for line in lines[1:]:
        c = parse_line(line)
        if c is None:
            continue
        proto = v.PROTOCOLS.number_of_label(c["protocol"], 0)
        # ipvsadm takes the client's family for the virtual address too.
        cname = addr_port(c["client_af"], c["client"], c["client_port"], proto, fmt.numeric)
        vname = addr_port(c["client_af"], c["virtual"], c["virtual_port"], proto, fmt.numeric)
        dname = addr_port(c["dest_af"], c["dest"], c["dest_port"], proto, fmt.numeric)
        expire = "%02d:%02d" % (c["expires"] // 60, c["expires"] % 60)
        if fmt.persistent_conn and c["pe_data"] is not None:
            out.append("%-3s %-6s %-11s %-18s %-18s %-16s %-18s %s" % (
                c["protocol"], expire, c["state"], cname, vname, dname, c["pe_name"], c["pe_data"]))
        else:
            out.append("%-3s %-6s %-11s %-18s %-18s %s" % (
                c["protocol"], expire, c["state"], cname, vname, dname))
    return "\n".join(out) + "\n"
