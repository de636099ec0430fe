"""One parsed ipvsadm command line, with ipvsadm's defaults filled in.

Made by ipvsctl.grammar (and, for the common -R lines, ipvsctl.fastline);
ops turns it into what it means.  The model values it names (its service's
key, service, real server, daemon) are made on demand.
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py's enum classes cost ~6 ms of start-up

from ipvsctl import model as m
from ipvsctl.cache import BoundedCache
from ipvsctl.render.format import Format


class Command:
    """One ipvsadm command line, validated, with ipvsadm's defaults filled in.

    A plain class whose defaults live on the class: a restore parses a
    hundred thousand of these, and an instance only stores what its line set.
    """

    # virtual service
    af = m.AF_INET
    protocol = 0
    addr: bytes | None = None  # packed address
    port = 0
    fwmark = 0
    scheduler = ""
    flags = 0
    timeout = 0
    netmask = m.IPV4_FULL_MASK
    pe_name = ""
    # real server
    dest_af = m.AF_INET
    dest_addr: bytes | None = None
    dest_port = 0
    fwd = m.FWD_ROUTE
    weight = 1
    u_threshold = 0
    l_threshold = 0
    tun_type = m.TUN_IPIP
    tun_port = 0
    tun_flags = 0
    # daemon
    daemon_state = 0
    mcast_ifn = ""
    syncid = 0
    sync_maxlen = 0
    mcast_group: str | None = None
    mcast_port = 0
    mcast_ttl = 0
    # --set
    timeouts: m.Timeouts | None = None

    def __init__(self, name: str):
        self.name = name
        self.options: set = set()
        self.fmt = Format()

    def __repr__(self) -> str:
        return f"Command({self.name!r}, {vars(self)!r})"

    # ---- model views ------------------------------------------------------
    def service_key(self) -> m.ServiceKey:
        return service_key_of(self.af, self.protocol, self.addr, self.port, self.fwmark)

    def service(self) -> m.Service:
        return m.Service(key=self.service_key(), scheduler=self.scheduler, flags=self.flags,
                         timeout=self.timeout, netmask=self.netmask, pe_name=self.pe_name)

    def destination(self) -> m.Destination:
        return m.Destination(af=self.dest_af, addr=socket.inet_ntop(self.dest_af, self.dest_addr),
                             port=self.dest_port, fwd=self.fwd, weight=self.weight,
                             u_threshold=self.u_threshold, l_threshold=self.l_threshold,
                             tun_type=self.tun_type, tun_port=self.tun_port,
                             tun_flags=self.tun_flags)

    def daemon(self) -> m.Daemon:
        return m.Daemon(state=self.daemon_state, mcast_ifn=self.mcast_ifn, syncid=self.syncid,
                        sync_maxlen=self.sync_maxlen, mcast_group=self.mcast_group,
                        mcast_port=self.mcast_port, mcast_ttl=self.mcast_ttl)


def _new_service_key(ident: tuple) -> m.ServiceKey:
    af, protocol, addr, port, fwmark = ident
    if fwmark:
        return m.ServiceKey(af=af, fwmark=fwmark)
    return m.ServiceKey(af=af, protocol=protocol, addr=socket.inet_ntop(af, addr), port=port)


# Each service's key made once: a restore names each service again on every
# real-server line.  The parser is a function of its line, so its memo is
# the module's (bounded by the one rule of cache.BoundedCache).
_SERVICE_KEYS = BoundedCache(1 << 16, _new_service_key)


def service_key_of(af: int, protocol: int, addr: bytes | None, port: int, fwmark: int) -> m.ServiceKey:
    return _SERVICE_KEYS[(af, protocol, addr, port, fwmark)]
