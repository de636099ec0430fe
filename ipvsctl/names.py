"""Addresses and ports as ipvsadm prints them, numerically or by name.

Without -n ipvsadm asks the resolver for every address (gethostbyaddr) and
the services database for every port (getservbyport, by the service's
protocol).  A table lists the same address many times, so answers are cached
for the life of the process.
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py's enum classes cost ~6 ms of start-up

from ipvsctl.labels import host_port
from ipvsctl.vocab import AF_INET, PROTOCOLS


# Plain dicts rather than functools.lru_cache: functools would be imported
# on every command's start-up for it.
_HOSTS: dict[str, str] = {}
_PORTS: dict[tuple[int, int], str] = {}


def host_name(addr: str) -> str:
    name = _HOSTS.get(addr)
    if name is None:
        try:
            # Bytes, not str: a str argument is IDNA-encoded first, which
            # imports encodings.idna (re, stringprep, unicodedata) on every
            # listing without -n.  An address is plain ASCII either way.
            name = socket.gethostbyaddr(addr.encode())[0]
        except (OSError, UnicodeError):
            name = addr
        _HOSTS[addr] = name
    return name


def port_name(port: int, protocol: int) -> str:
    name = _PORTS.get((port, protocol))
    if name is None:
        name = str(port)
        proto = PROTOCOLS.key(protocol)  # the services database's protocol names
        if proto is not None:
            try:
                name = socket.getservbyport(port, proto)
            except (OSError, OverflowError):
                pass
        _PORTS[(port, protocol)] = name
    return name


def addr_port(af: int, addr: str, port: int, protocol: int, numeric: bool) -> str:
    """'1.2.3.4:80', '[2001:db8::1]:80', or the same with names."""
    if numeric:
        return host_port(af, addr, port)
    host = host_name(addr)
    service = port_name(port, protocol)
    text = f"{host}:{service}" if af == AF_INET else f"[{host}]:{service}"
    return text[:59]  # ipvsadm formats into a 60-byte buffer
