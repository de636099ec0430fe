"""Which services a plan may touch: ``--scope CIDR`` and ``--scope fwmark:LO-HI``.

Strategy: ownership is stated, never guessed.  kube-proxy's IPVS proxier
removed every service it did not create itself, other tools' included; here
a plan touches nothing outside the scopes given.  A service is inside a scope
when its virtual address is in the CIDR (of the same family) or its fwmark in
the range (either family).  Several scopes add up.  No scope at all means the
whole table (only ``--prune`` ever reaches services the file does not name,
and ``diff`` shows what it would remove).
"""

from __future__ import annotations

from ipvsctl import model as m

UINT_MAX = 2**32 - 1


class ScopeError(ValueError):
    pass


class Scope:
    """A union of address ranges and fwmark ranges; empty means everything."""

    def __init__(self, networks=(), marks=(), texts=()):
        self.networks = tuple(networks)  # ipaddress networks
        self.marks = tuple(marks)  # (lo, hi), inclusive
        self.texts = tuple(texts)  # as the user wrote them, canonical

    @classmethod
    def parse(cls, texts) -> Scope:
        import ipaddress

        networks, marks, canon = [], [], []
        for text in texts:
            word = text.strip()
            if word.lower().startswith("fwmark:"):
                lo, hi = _mark_range(word[len("fwmark:"):], text)
                marks.append((lo, hi))
                canon.append(f"fwmark:{lo}-{hi}")
                continue
            try:
                net = ipaddress.ip_network(word, strict=False)
            except ValueError:
                raise ScopeError(f"--scope {text!r}: expected a CIDR (10.0.0.0/8, 2001:db8::/32) "
                                 "or fwmark:LO-HI") from None
            networks.append(net)
            canon.append(str(net))
        return cls(networks, marks, canon)

    @property
    def everything(self) -> bool:
        return not self.networks and not self.marks

    def contains(self, key: m.ServiceKey) -> bool:
        if self.everything:
            return True
        if key.fwmark:
            return any(lo <= key.fwmark <= hi for lo, hi in self.marks)
        if not self.networks:
            return False
        import ipaddress

        addr = ipaddress.ip_address(key.addr)
        return any(addr.version == net.version and addr in net for net in self.networks)

    def __repr__(self) -> str:
        return f"Scope({list(self.texts)!r})"


def _mark_range(spec: str, text: str) -> tuple[int, int]:
    lo_text, dash, hi_text = spec.partition("-")
    try:
        lo = int(lo_text, 0)
        hi = int(hi_text, 0) if dash else lo
    except ValueError:
        raise ScopeError(f"--scope {text!r}: expected fwmark:LO-HI with marks 1..{UINT_MAX}") from None
    if not 1 <= lo <= hi <= UINT_MAX:
        raise ScopeError(f"--scope {text!r}: expected fwmark:LO-HI with 1 <= LO <= HI <= {UINT_MAX}")
    return lo, hi
