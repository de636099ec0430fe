"""How services and real servers are named for people: in ipvsctl's own
views, plans, reports and error messages.

Always numeric (a name for a person should not wait on DNS, and a plan is
about identities, never about what a resolver says today):
``TCP 192.0.2.1:80``, ``UDP [2001:db8::1]:53``, ``FWM 5``, ``FWM 7 IPv6``;
real servers ``198.51.100.1:80`` or ``[2001:db8::11]:443``.  The same
address form is what ipvsadm prints with ``-n``.
"""

from __future__ import annotations

from ipvsctl import vocab as v

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only
    from ipvsctl.model import Destination, ServiceKey


def host_port(af: int, addr: str | None, port: int) -> str:
    """'192.0.2.1:80', or '[2001:db8::1]:80' (IPv6 in brackets)."""
    return f"[{addr}]:{port}" if af == v.AF_INET6 else f"{addr}:{port}"


def service_label(key: ServiceKey) -> str:
    """'TCP 192.0.2.1:80', 'UDP [2001:db8::1]:53', 'FWM 5', 'FWM 7 IPv6'."""
    if key.fwmark:
        return f"FWM {key.fwmark}" + (" IPv6" if key.af == v.AF_INET6 else "")
    proto = v.PROTOCOLS.name(key.protocol, str(key.protocol))
    return f"{proto} {host_port(key.af, key.addr, key.port)}"


def server_label(d: Destination) -> str:
    return host_port(d.af, d.addr, d.port)
