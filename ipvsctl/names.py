"""Addresses and ports as ipvsadm prints them, numerically or by name.

Without -n ipvsadm asks the resolver for every address (gethostbyaddr) and
the services database for every port (getservbyport, by the service's
protocol).  A table lists the same address many times, so answers are cached
for the life of the process.
"""

from __future__ import annotations

import socket
from functools import lru_cache

from ipvsctl.model import AF_INET, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP

_PROTO_DB = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", IPPROTO_SCTP: "sctp"}


@lru_cache(maxsize=4096)
def host_name(addr: str) -> str:
    try:
        return socket.gethostbyaddr(addr)[0]
    except (OSError, UnicodeError):
        return addr


@lru_cache(maxsize=4096)
def port_name(port: int, protocol: int) -> str:
    proto = _PROTO_DB.get(protocol)
    if proto is not None:
        try:
            return socket.getservbyport(port, proto)
        except (OSError, OverflowError):
            pass
    return str(port)


def numeric_addr_port(af: int, addr: str, port: int) -> str:
    """'1.2.3.4:80' or '[2001:db8::1]:80'."""
    return "%s:%d" % (addr, port) if af == AF_INET else "[%s]:%d" % (addr, port)


def addr_port(af: int, addr: str, port: int, protocol: int, numeric: bool) -> str:
    """'1.2.3.4:80', '[2001:db8::1]:80', or the same with names."""
    if numeric:
        return numeric_addr_port(af, addr, port)
    host = host_name(addr)
    service = port_name(port, protocol)
    text = f"{host}:{service}" if af == AF_INET else f"[{host}]:{service}"
    return text[:59]  # ipvsadm formats into a 60-byte buffer
