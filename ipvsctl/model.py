"""The IPVS objects as plain, frozen values.

Strategy: one immutable value class per kernel object, holding exactly what the
kernel holds, in host units (ports and tunnel ports as host-order ints,
addresses as canonical text from ``inet_ntop``).  Identity (``ServiceKey``,
the destination's address and port) is kept apart from configuration and from
counters, so that a service read back from the kernel compares equal to the
one that was asked for once the counters are set aside.  Nothing here does I/O
and nothing here imports anything but the standard library and the vocabulary
(ipvsctl.vocab).
"""

from __future__ import annotations

from operator import attrgetter

# The values of the fields below (address families, protocols, forwarding
# methods, flags, tunnel types, daemon states, defaults) are the
# vocabulary's; they are named here too, since every user of these classes
# needs them.
from ipvsctl.vocab import (  # noqa: F401
    AF_INET,
    AF_INET6,
    DAEMON_BACKUP,
    DAEMON_MASTER,
    DEFAULT_PERSISTENCE_TIMEOUT,
    DEFAULT_SCHEDULER,
    FWD_BYPASS,
    FWD_LOCAL,
    FWD_MASK,
    FWD_MASQ,
    FWD_ROUTE,
    FWD_TUNNEL,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV4_FULL_MASK,
    SVC_F_HASHED,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    SVC_F_SCHED1,
    SVC_F_SCHED2,
    SVC_F_SCHED3,
    SVC_F_SCHED_MASK,
    TUN_F_CSUM,
    TUN_F_NOCSUM,
    TUN_F_REMCSUM,
    TUN_GRE,
    TUN_GUE,
    TUN_IPIP,
)


def immutable(cls):
    """What ``@dataclass(frozen=True, slots=True)`` would add to ``cls``, written once.

    Why not dataclasses: importing ``dataclasses`` (it pulls in inspect, ast,
    dis, re) and decorating the classes cost about 30 ms of every command's
    start-up natively and ~75 ms inside User-Mode Linux, more than all of
    ipvsctl's own modules together (docs/performance.md).

    ``cls`` names its fields in ``__slots__`` (in order, which is also the
    positional order of its constructor) and the ones that take part in
    ``==`` and ``hash`` in ``_compared``.  ``__setattr__`` refuses every
    change, so construction cannot assign attributes the usual way, and
    ``object.__setattr__`` per field (what dataclasses do) costs ~0.25 us a
    field: a restore builds a Destination per line and a listing one per real
    server.  Instead ``__new__`` fills a blank instance of ``cls._blank``, a
    plain class with the very same slots (ordinary, fast stores), then sets
    its ``__class__`` to ``cls``; CPython allows that between classes of
    identical layout, and the result is an ordinary instance of ``cls``
    (tested).  About 10x faster.  Hence a decorator, not a base class: the
    two classes must both derive from ``object`` alone.
    """
    fields = cls.__slots__
    compared = cls.__dict__.get("_compared", fields)
    name = cls.__name__
    # The compared fields, and all fields, as one tuple, read in C (these
    # objects are hashed as dict keys on hot paths, e.g. the codec's cache of
    # encoded service identities).
    compared_values = attrgetter(*compared) if len(compared) > 1 else lambda o: (getattr(o, compared[0]),)
    all_values = attrgetter(*fields) if len(fields) > 1 else lambda o: (getattr(o, fields[0]),)

    def __setattr__(self, attr, value):
        raise AttributeError(f"{name} is immutable: cannot set {attr!r}")

    def __delattr__(self, attr):
        raise AttributeError(f"{name} is immutable: cannot delete {attr!r}")

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return compared_values(self) == compared_values(other)

    def __hash__(self):
        return hash(compared_values(self))

    def __repr__(self):
        return "%s(%s)" % (name, ", ".join(f"{f}={getattr(self, f)!r}" for f in fields))

    def __reduce__(self):
        return (cls, all_values(self))

    def replace(self, **changes):
        """A copy with some fields changed (what dataclasses.replace does)."""
        unknown = set(changes).difference(fields)
        if unknown:
            raise TypeError(f"{name} has no field {sorted(unknown)[0]!r}")
        values = {f: getattr(self, f) for f in fields}
        values.update(changes)
        return cls(**values)

    for method in (__setattr__, __delattr__, __eq__, __hash__, __repr__, __reduce__, replace):
        method.__qualname__ = f"{name}.{method.__name__}"
        setattr(cls, method.__name__, method)
    cls._compared = compared
    cls._blank = type(f"_{name}Blank", (), {"__slots__": fields})
    return cls


@immutable
class Stats:
    """Counters and rate estimates of a service or destination (stats64)."""

    __slots__ = ("conns", "inpkts", "outpkts", "inbytes", "outbytes",
                 "cps", "inpps", "outpps", "inbps", "outbps")

    def __new__(cls, conns: int = 0, inpkts: int = 0, outpkts: int = 0, inbytes: int = 0,
                 outbytes: int = 0, cps: int = 0, inpps: int = 0, outpps: int = 0,
                 inbps: int = 0, outbps: int = 0):
        self = cls._blank()
        self.conns = conns
        self.inpkts = inpkts
        self.outpkts = outpkts
        self.inbytes = inbytes
        self.outbytes = outbytes
        self.cps = cps
        self.inpps = inpps
        self.outpps = outpps
        self.inbps = inbps
        self.outbps = outbps
        self.__class__ = cls
        return self


@immutable
class ServiceKey:
    """What names a virtual service: (af, protocol, addr, port) or (af, fwmark).

    For a fwmark service ``protocol`` is 0, ``addr`` is None and ``port`` 0.
    """

    __slots__ = ("af", "protocol", "addr", "port", "fwmark")

    def __new__(cls, af: int, protocol: int = 0, addr: str | None = None, port: int = 0,
                 fwmark: int = 0):
        self = cls._blank()
        self.af = af
        self.protocol = protocol
        self.addr = addr
        self.port = port
        self.fwmark = fwmark
        self.__class__ = cls
        return self

    @property
    def is_fwmark(self) -> bool:
        return self.fwmark != 0


@immutable
class Service:
    """A virtual service.

    ``netmask`` follows the kernel: for IPv4 a 32-bit mask as an int in host
    order (0xFFFFFFFF for /32), for IPv6 a prefix length; left out, the
    full mask of the key's family (0xFFFFFFFF or 128).
    ``flags`` holds the SVC_F_* bits (persistent, one-packet, scheduler flags).
    ``stats`` (read back from the kernel) takes no part in equality.
    """

    __slots__ = ("key", "scheduler", "flags", "timeout", "netmask", "pe_name", "stats")
    _compared = ("key", "scheduler", "flags", "timeout", "netmask", "pe_name")

    def __new__(cls, key: ServiceKey, scheduler: str = DEFAULT_SCHEDULER, flags: int = 0,
                 timeout: int = 0, netmask: int | None = None, pe_name: str = "",
                 stats: Stats | None = None):
        self = cls._blank()
        self.key = key
        self.scheduler = scheduler
        self.flags = flags
        self.timeout = timeout
        # The full mask by default, which is a prefix length for IPv6: the
        # kernel refuses 0xFFFFFFFF there.
        self.netmask = netmask if netmask is not None else (128 if key.af == AF_INET6 else IPV4_FULL_MASK)
        self.pe_name = pe_name
        self.stats = stats
        self.__class__ = cls
        return self

    @property
    def persistent(self) -> bool:
        return bool(self.flags & SVC_F_PERSISTENT)


@immutable
class Destination:
    """A real server of one virtual service.

    ``af`` is the real server's own address family (it may differ from the
    service's only for tunnelling).  Connection counters and ``stats`` are
    read-only values reported by the kernel and take no part in equality.
    """

    __slots__ = ("af", "addr", "port", "fwd", "weight", "u_threshold", "l_threshold",
                 "tun_type", "tun_port", "tun_flags", "active_conns", "inact_conns",
                 "persist_conns", "stats")
    _compared = ("af", "addr", "port", "fwd", "weight", "u_threshold", "l_threshold",
                 "tun_type", "tun_port", "tun_flags")

    def __new__(cls, af: int, addr: str, port: int, fwd: int = FWD_ROUTE, weight: int = 1,
                 u_threshold: int = 0, l_threshold: int = 0, tun_type: int = TUN_IPIP,
                 tun_port: int = 0, tun_flags: int = TUN_F_NOCSUM, active_conns: int = 0,
                 inact_conns: int = 0, persist_conns: int = 0, stats: Stats | None = None):
        self = cls._blank()
        self.af = af
        self.addr = addr
        self.port = port
        self.fwd = fwd
        self.weight = weight
        self.u_threshold = u_threshold
        self.l_threshold = l_threshold
        self.tun_type = tun_type
        self.tun_port = tun_port
        self.tun_flags = tun_flags
        self.active_conns = active_conns
        self.inact_conns = inact_conns
        self.persist_conns = persist_conns
        self.stats = stats
        self.__class__ = cls
        return self


@immutable
class Timeouts:
    """Connection timeouts in seconds; 0 in a request means 'leave as is'."""

    __slots__ = ("tcp", "tcp_fin", "udp")

    def __new__(cls, tcp: int = 0, tcp_fin: int = 0, udp: int = 0):
        self = cls._blank()
        self.tcp = tcp
        self.tcp_fin = tcp_fin
        self.udp = udp
        self.__class__ = cls
        return self


@immutable
class Daemon:
    """One connection-sync daemon (master or backup).

    ``mcast_group`` is IPv4 or IPv6 text, None when unset.
    """

    __slots__ = ("state", "mcast_ifn", "syncid", "sync_maxlen", "mcast_group",
                 "mcast_port", "mcast_ttl")

    def __new__(cls, state: int, mcast_ifn: str = "", syncid: int = 0, sync_maxlen: int = 0,
                 mcast_group: str | None = None, mcast_port: int = 0, mcast_ttl: int = 0):
        self = cls._blank()
        self.state = state
        self.mcast_ifn = mcast_ifn
        self.syncid = syncid
        self.sync_maxlen = sync_maxlen
        self.mcast_group = mcast_group
        self.mcast_port = mcast_port
        self.mcast_ttl = mcast_ttl
        self.__class__ = cls
        return self


@immutable
class Info:
    """IPVS version (as the kernel's packed int) and connection table size."""

    __slots__ = ("version", "conn_tab_size")

    def __new__(cls, version: int, conn_tab_size: int):
        self = cls._blank()
        self.version = version
        self.conn_tab_size = conn_tab_size
        self.__class__ = cls
        return self

    @property
    def version_text(self) -> str:
        v = self.version
        return f"{(v >> 16) & 0xFF}.{(v >> 8) & 0xFF}.{v & 0xFF}"
