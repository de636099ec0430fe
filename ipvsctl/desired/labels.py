"""How services and real servers are named in plans, reports and errors.

Always numeric (a plan is about identities, never about what a resolver
says today): ``TCP 192.0.2.1:80``, ``UDP [2001:db8::1]:53``, ``FWM 5``,
``FWM 7 IPv6``; real servers ``198.51.100.1:80`` or ``[2001:db8::11]:443``.
"""

from __future__ import annotations

from ipvsctl import model as m


def host_port(af: int, addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if af == m.AF_INET6 else f"{addr}:{port}"


def service_label(key: m.ServiceKey) -> str:
    if key.fwmark:
        return f"FWM {key.fwmark}" + (" IPv6" if key.af == m.AF_INET6 else "")
    proto = m.PROTOCOL_NAMES.get(key.protocol, str(key.protocol))
    return f"{proto} {host_port(key.af, key.addr, key.port)}"


def server_label(d: m.Destination) -> str:
    return host_port(d.af, d.addr, d.port)
