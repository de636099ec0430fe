"""JSON views of the IPVS table, for programs (``--json``, like ``ip -j``).

Strategy: one function per kernel object turns a model value into a plain
dict with stable key names (docs/json.md is the schema).  The rules:

* every key is always present, whatever list mode asked for the document
  (``--stats``, ``--rate``, ``--thresholds`` ... all print the same
  document): a program never has to guess which flags produce which keys;
  absent values are ``null``, never a missing key;
* integers are exact (no K/M scaling, no ``--exact`` needed), addresses are
  canonical text (``inet_ntop``), never names: ``-n`` makes no difference;
* order is the listing query's (ipvsctl.listing: ipvsadm's order, or with
  ``--nosort`` the kernel's): this module only formats what it is given;
* keys may be added in later versions, never renamed or retyped.

``ipvsctl.jsonrestore`` reads the same document back.  The stdlib ``json``
module is imported only when a document is actually written, so nothing
here weighs on the plain ``ipvsctl -Ln`` path (which never imports this
module anyway).
"""

from __future__ import annotations

from ipvsctl import model as m
from ipvsctl import vocab as v
from ipvsctl.render.text import ipv4_mask_text


def family_name(af: int):
    return v.FAMILIES.key(af, af)


def stats_dict(st: m.Stats | None) -> dict:
    st = st or m.Stats()
    return {"conns": st.conns, "inpkts": st.inpkts, "outpkts": st.outpkts,
            "inbytes": st.inbytes, "outbytes": st.outbytes}


def rates_dict(st: m.Stats | None) -> dict:
    st = st or m.Stats()
    return {"cps": st.cps, "inpps": st.inpps, "outpps": st.outpps,
            "inbps": st.inbps, "outbps": st.outbps}


def tunnel_dict(d: m.Destination) -> dict | None:
    if d.fwd != m.FWD_TUNNEL:
        return None
    return {
        "type": v.TUNNELS.key(d.tun_type, d.tun_type),
        "port": d.tun_port,
        "checksum": v.CHECKSUMS.key(d.tun_flags, d.tun_flags),
    }


def server_identity(d: m.Destination) -> dict:
    """The keys that name a real server (within its service)."""
    return {"family": family_name(d.af), "address": d.addr, "port": d.port}


def service_identity(k: m.ServiceKey) -> dict:
    """The keys that name a service."""
    return {
        "family": family_name(k.af),
        "protocol": None if k.fwmark else v.PROTOCOLS.key(k.protocol, k.protocol),
        "address": None if k.fwmark else k.addr,
        "port": None if k.fwmark else k.port,
        "fwmark": k.fwmark or None,
    }


def destination_dict(d: m.Destination) -> dict:
    return {
        **server_identity(d),
        "forward": v.FORWARDS.key(d.fwd, d.fwd),
        "weight": d.weight,
        "u_threshold": d.u_threshold,
        "l_threshold": d.l_threshold,
        "tunnel": tunnel_dict(d),
        "active_conns": d.active_conns,
        "inact_conns": d.inact_conns,
        "persist_conns": d.persist_conns,
        "stats": stats_dict(d.stats),
        "rates": rates_dict(d.stats),
    }


def service_dict(svc: m.Service, dests: list[m.Destination]) -> dict:
    k = svc.key
    if k.af == m.AF_INET6:
        netmask = svc.netmask
    else:
        netmask = ipv4_mask_text(svc.netmask & 0xFFFFFFFF)
    return {
        **service_identity(k),
        "scheduler": svc.scheduler,
        "sched_flags": v.sched_flag_names(svc.scheduler, svc.flags),
        "persistent": bool(svc.flags & m.SVC_F_PERSISTENT),
        "timeout": svc.timeout,
        "netmask": netmask,
        "pe": svc.pe_name or None,
        "one_packet": bool(svc.flags & m.SVC_F_ONEPACKET),
        "stats": stats_dict(svc.stats),
        "rates": rates_dict(svc.stats),
        "destinations": [destination_dict(d) for d in dests],
    }


def table_doc(info: m.Info | None, table) -> dict:
    """The document of ``-L --json`` and ``ipvsctl list --json``."""
    return {
        "version": info.version_text if info else None,
        "conn_tab_size": info.conn_tab_size if info else None,
        "services": [service_dict(svc, dests) for svc, dests in table],
    }


def timeouts_doc(t: m.Timeouts) -> dict:
    return {"timeouts": {"tcp": t.tcp, "tcp_fin": t.tcp_fin, "udp": t.udp}}


def daemon_dict(d: m.Daemon) -> dict:
    return {
        "state": v.DAEMONS.key(d.state, d.state),
        "mcast_interface": d.mcast_ifn,
        "syncid": d.syncid,
        "sync_maxlen": d.sync_maxlen,
        "mcast_group": d.mcast_group,
        "mcast_port": d.mcast_port,
        "mcast_ttl": d.mcast_ttl,
    }


def daemons_doc(ds: list[m.Daemon]) -> dict:
    # ipvsadm's order: the master first, then the backup.
    order = {m.DAEMON_MASTER: 0, m.DAEMON_BACKUP: 1}
    return {"daemons": [daemon_dict(d) for d in sorted(ds, key=lambda d: order.get(d.state, 2))]}


def connection_dict(c: dict) -> dict:
    return {
        "protocol": c["protocol"].lower(),
        "client_address": c["client"],
        "client_port": c["client_port"],
        "virtual_address": c["virtual"],
        "virtual_port": c["virtual_port"],
        "destination_address": c["dest"],
        "destination_port": c["dest_port"],
        "state": c["state"],
        "expires": c["expires"],
        "pe_name": c["pe_name"],
        "pe_data": c["pe_data"],
    }


def connections_doc(raw: str) -> dict:
    """``-L -c --json``: /proc/net/ip_vs_conn, one object per connection."""
    from ipvsctl.render.connections import parse_line

    conns = []
    for line in raw.splitlines()[1:]:
        c = parse_line(line)
        if c is not None:
            conns.append(connection_dict(c))
    return {"connections": conns}


def dumps(doc: dict, pretty: bool = False) -> str:
    """The document as text: one line (fast: the C encoder), or indented."""
    import json

    if pretty:
        return json.dumps(doc, indent=2) + "\n"
    return json.dumps(doc, separators=(",", ":")) + "\n"
