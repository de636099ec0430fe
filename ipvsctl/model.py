"""The IPVS objects as plain, frozen values.

Strategy: one immutable dataclass per kernel object, holding exactly what the
kernel holds, in host units (ports and tunnel ports as host-order ints,
addresses as canonical text from ``inet_ntop``).  Identity (``ServiceKey``,
the destination's address and port) is kept apart from configuration and from
counters, so that a service read back from the kernel compares equal to the
one that was asked for once the counters are set aside.  Nothing here does I/O
and nothing here imports anything outside the standard library.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

AF_INET = int(socket.AF_INET)
AF_INET6 = int(socket.AF_INET6)

# IP protocol numbers of the three protocols IPVS balances.
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_SCTP = 132
PROTOCOL_NAMES = {IPPROTO_TCP: "TCP", IPPROTO_UDP: "UDP", IPPROTO_SCTP: "SCTP"}

# Forwarding methods (low bits of the destination's conn_flags).
FWD_MASQ = 0
FWD_LOCAL = 1
FWD_TUNNEL = 2
FWD_ROUTE = 3
FWD_BYPASS = 4
FWD_MASK = 0x0007

# Service flags.
SVC_F_PERSISTENT = 0x0001
SVC_F_HASHED = 0x0002
SVC_F_ONEPACKET = 0x0004
SVC_F_SCHED1 = 0x0008
SVC_F_SCHED2 = 0x0010
SVC_F_SCHED3 = 0x0020
SVC_F_SCHED_MASK = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3

# Tunnel types and encapsulation flags of tunnelled destinations.
TUN_IPIP = 0
TUN_GUE = 1
TUN_GRE = 2
TUN_NAMES = ("ipip", "gue", "gre")
TUN_F_NOCSUM = 0
TUN_F_CSUM = 1
TUN_F_REMCSUM = 2

# Sync daemon states.
DAEMON_MASTER = 1
DAEMON_BACKUP = 2

DEFAULT_SCHEDULER = "wlc"
DEFAULT_PERSISTENCE_TIMEOUT = 360
IPV4_FULL_MASK = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Stats:
    """Counters and rate estimates of a service or destination (stats64)."""

    conns: int = 0
    inpkts: int = 0
    outpkts: int = 0
    inbytes: int = 0
    outbytes: int = 0
    cps: int = 0
    inpps: int = 0
    outpps: int = 0
    inbps: int = 0
    outbps: int = 0


@dataclass(frozen=True, slots=True)
class ServiceKey:
    """What names a virtual service: (af, protocol, addr, port) or (af, fwmark).

    For a fwmark service ``protocol`` is 0, ``addr`` is None and ``port`` 0.
    """

    af: int
    protocol: int = 0
    addr: str | None = None
    port: int = 0
    fwmark: int = 0

    @property
    def is_fwmark(self) -> bool:
        return self.fwmark != 0


@dataclass(frozen=True, slots=True)
class Service:
    """A virtual service.

    ``netmask`` follows the kernel: for IPv4 a 32-bit mask as an int in host
    order (0xFFFFFFFF for /32), for IPv6 a prefix length (128 by default).
    ``flags`` holds the SVC_F_* bits (persistent, one-packet, scheduler flags).
    """

    key: ServiceKey
    scheduler: str = DEFAULT_SCHEDULER
    flags: int = 0
    timeout: int = 0
    netmask: int = IPV4_FULL_MASK
    pe_name: str = ""
    stats: Stats | None = field(default=None, compare=False)

    @property
    def persistent(self) -> bool:
        return bool(self.flags & SVC_F_PERSISTENT)


@dataclass(frozen=True, slots=True)
class Destination:
    """A real server of one virtual service.

    ``af`` is the real server's own address family (it may differ from the
    service's only for tunnelling).  Connection counters are read-only values
    reported by the kernel.
    """

    af: int
    addr: str
    port: int
    fwd: int = FWD_ROUTE
    weight: int = 1
    u_threshold: int = 0
    l_threshold: int = 0
    tun_type: int = TUN_IPIP
    tun_port: int = 0
    tun_flags: int = TUN_F_NOCSUM
    active_conns: int = field(default=0, compare=False)
    inact_conns: int = field(default=0, compare=False)
    persist_conns: int = field(default=0, compare=False)
    stats: Stats | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Connection timeouts in seconds; 0 in a request means 'leave as is'."""

    tcp: int = 0
    tcp_fin: int = 0
    udp: int = 0


@dataclass(frozen=True, slots=True)
class Daemon:
    """One connection-sync daemon (master or backup)."""

    state: int
    mcast_ifn: str = ""
    syncid: int = 0
    sync_maxlen: int = 0
    mcast_group: str | None = None  # IPv4 or IPv6 text, None when unset
    mcast_port: int = 0
    mcast_ttl: int = 0


@dataclass(frozen=True, slots=True)
class Info:
    """IPVS version (as the kernel's packed int) and connection table size."""

    version: int
    conn_tab_size: int

    @property
    def version_text(self) -> str:
        v = self.version
        return f"{(v >> 16) & 0xFF}.{(v >> 8) & 0xFF}.{v & 0xFF}"
