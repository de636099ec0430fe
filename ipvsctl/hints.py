"""What a user probably meant by a service that does not exist.

Strategy: ipvsadm answers a missing service with "No such service", and its
surface keeps that answer byte for byte.  ipvsctl's own views (``list``,
``watch``) may say more: given the key that was asked for, the words it was
written in, and the keys that do exist, ``missing_service`` names the
likely mistake when the table shows one:

* an IPv6 address with a port but without brackets (``fd00::10:80`` is
  the address fd00::10:80, port 0; ``[fd00::10]:80`` was meant);
* a fwmark service asked for in the other family (``-f 200`` when only the
  IPv6 mark 200 exists: ``-6`` is missing, or the other way round);
* the same address and port under another protocol (``-t`` for a UDP
  service);
* an address without its port (port 0) where services on that address
  have one.

A pure function of model values: no kernel, no I/O.
"""

from __future__ import annotations

from ipvsctl import model as m
from ipvsctl import vocab as v


def _where(key: m.ServiceKey) -> str:
    if key.fwmark:
        return f"-f {key.fwmark}" + (" -6" if key.af == m.AF_INET6 else "")
    addr = f"[{key.addr}]:{key.port}" if key.af == m.AF_INET6 else f"{key.addr}:{key.port}"
    return f"{v.PROTOCOLS.rule(key.protocol, '-t')} {addr}"


def missing_service(key: m.ServiceKey, given: str | None, existing) -> str:
    """The sentence for ``key`` not being in ``existing`` (ServiceKeys):
    "No such service", and a hint when the table suggests one."""
    keys = set(existing)
    hint = _hint(key, given, keys)
    return "No such service" + (f" ({_where(key)}); {hint}" if hint else "")


def _hint(key: m.ServiceKey, given: str | None, keys: set) -> str | None:
    if key.fwmark:
        other = m.ServiceKey(af=m.AF_INET if key.af == m.AF_INET6 else m.AF_INET6, fwmark=key.fwmark)
        if other in keys:
            if other.af == m.AF_INET6:
                return f"there is an IPv6 fwmark service {key.fwmark}: add -6 after -f ({_where(other)})"
            return f"only the IPv4 fwmark service {key.fwmark} exists: leave out -6"
        return None
    if key.af == m.AF_INET6 and key.port == 0 and given and "[" not in given:
        addr, sep, port = given.rpartition(":")
        if sep and port.isdigit() and int(port) <= 65535:
            import socket

            try:
                canonical = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, addr))
            except (OSError, ValueError):
                canonical = None
            if canonical is not None:
                meant = m.ServiceKey(af=m.AF_INET6, protocol=key.protocol, addr=canonical,
                                     port=int(port))
                found = meant in keys
                return ((f"did you mean {_where(meant)}? " if found else "")
                        + "an IPv6 address with a port goes in brackets, [ADDRESS]:PORT; "
                        f"without them {given} is all address, with port 0")
    for proto in (m.IPPROTO_TCP, m.IPPROTO_UDP, m.IPPROTO_SCTP):
        if proto != key.protocol:
            other = m.ServiceKey(af=key.af, protocol=proto, addr=key.addr, port=key.port)
            if other in keys:
                return f"there is a {v.PROTOCOLS.label(proto)} service there: {_where(other)}"
    if key.port == 0:  # no port given: the services at that address
        ports = sorted(k.port for k in keys if not k.fwmark and k.af == key.af
                       and k.protocol == key.protocol and k.addr == key.addr)
        if ports:
            meant = [_where(m.ServiceKey(af=key.af, protocol=key.protocol, addr=key.addr, port=p))
                     for p in ports[:3]]
            return f"without a port it is port 0; did you mean {' or '.join(meant)}?"
    return None
