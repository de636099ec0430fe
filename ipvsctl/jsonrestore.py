"""``ipvsctl restore --json``: recreate a table from ``list --json`` output.

Strategy: two phases, like ``-R`` (ipvsctl.restore).
1. ``parse_document`` checks the whole document before anything is sent and
   turns it into model values; the first problem found raises
   ``DocumentError`` naming the field by its path
   (``services[2].destinations[0].weight``), and nothing is changed.
   Read-only fields of a listing (counters, rates, connection counts,
   version) are accepted and ignored; an unknown key is refused, so that a
   typo in a hand-written document does not silently become a default.
2. ``requests`` turns the table into one ``add_service`` per service followed
   by one ``add_dest`` per real server, optionally behind a ``flush``, and
   ``apply`` sends them all through ``Backend.apply_many`` (pipelined: tens of
   thousands of requests in a few system calls) and reports every request
   the kernel refused, by its path in the document, in ipvsadm's words.

The schema is docs/json.md; the writer is ipvsctl.render.json.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from ipvsctl import backend as b
from ipvsctl import model as m
from ipvsctl.render.json import CHECKSUM_KEYS, FORWARD_KEYS, PROTOCOL_KEYS

INT_MAX = 2**31 - 1
UINT_MAX = 2**32 - 1
SCHEDNAME_MAX = 15
PENAME_MAX = 16

_FAMILIES = {"inet": m.AF_INET, "inet6": m.AF_INET6}
_PROTOCOLS = {v: k for k, v in PROTOCOL_KEYS.items()}
_FORWARDS = {v: k for k, v in FORWARD_KEYS.items()}
_CHECKSUMS = {v: k for k, v in CHECKSUM_KEYS.items()}

_TOP_KEYS = {"services", "version", "conn_tab_size"}
_SERVICE_KEYS = {"family", "protocol", "address", "port", "fwmark", "scheduler", "sched_flags",
                 "persistent", "timeout", "netmask", "pe", "one_packet", "destinations",
                 "stats", "rates"}
_DEST_KEYS = {"family", "address", "port", "forward", "weight", "u_threshold", "l_threshold",
              "tunnel", "active_conns", "inact_conns", "persist_conns", "stats", "rates"}
_TUNNEL_KEYS = {"type", "port", "checksum"}


class DocumentError(ValueError):
    """A document that cannot be restored; ``path`` names the bad field."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def _show(value) -> str:
    import json

    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _obj(value, path: str, allowed: set) -> dict:
    if not isinstance(value, dict):
        raise DocumentError(path, f"expected an object, got {_show(value)}")
    for key in value:
        if key not in allowed:
            raise DocumentError(f"{path}.{key}" if path else key, "unknown field")
    return value


def _int(value, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DocumentError(path, f"expected an integer {lo}..{hi}, got {_show(value)}")
    if not lo <= value <= hi:
        raise DocumentError(path, f"{value} is out of range {lo}..{hi}")
    return value


def _bool(value, path: str) -> bool:
    if not isinstance(value, bool):
        raise DocumentError(path, f"expected true or false, got {_show(value)}")
    return value


def _choice(value, path: str, choices: dict) -> int:
    if not isinstance(value, str) or value not in choices:  # a list or dict is not hashable
        names = ", ".join(f'"{c}"' for c in choices)
        raise DocumentError(path, f"expected one of {names}, got {_show(value)}")
    return choices[value]


def _address(value, path: str, family: int | None) -> tuple[int, str]:
    if not isinstance(value, str):
        raise DocumentError(path, f"expected an IPv4 or IPv6 address, got {_show(value)}")
    for af in (m.AF_INET, m.AF_INET6):
        try:
            canonical = socket.inet_ntop(af, socket.inet_pton(af, value))
        except (OSError, ValueError):
            continue
        if family is not None and af != family:
            want = "IPv6" if family == m.AF_INET6 else "IPv4"
            raise DocumentError(path, f"{_show(value)} is not an {want} address (see family)")
        return af, canonical
    raise DocumentError(path, f"{_show(value)} is not an IPv4 or IPv6 address")


def _family(obj: dict, path: str) -> int | None:
    if obj.get("family") is None:
        return None
    return _choice(obj["family"], f"{path}.family", _FAMILIES)


def _sched_flags(value, path: str, scheduler: str) -> int:
    from ipvsctl.grammar import SCHED_FLAGS

    if not isinstance(value, list):
        raise DocumentError(path, f"expected a list of flag names, got {_show(value)}")
    flags = 0
    for i, name in enumerate(value):
        entry = SCHED_FLAGS.get(name) if isinstance(name, str) else None
        if entry is None:
            names = ", ".join(SCHED_FLAGS)
            raise DocumentError(f"{path}[{i}]", f"expected one of {names}, got {_show(name)}")
        bit, owner = entry
        if owner is not None and owner != scheduler:
            raise DocumentError(f"{path}[{i}]", f'"{name}" is a flag of the {owner} scheduler, '
                                                f'not of {scheduler}')
        flags |= bit
    return flags


def _netmask(value, path: str, af: int) -> int:
    if af == m.AF_INET6:
        return _int(value, path, 1, 128)
    if isinstance(value, str):
        try:
            return int.from_bytes(socket.inet_pton(m.AF_INET, value), "big")
        except OSError:
            pass
    raise DocumentError(path, f'expected an IPv4 netmask like "255.255.255.0", got {_show(value)}')


def parse_service(obj, path: str) -> tuple[m.Service, list[m.Destination]]:
    from ipvsctl.grammar import MAX_TIMEOUT

    obj = _obj(obj, path, _SERVICE_KEYS)
    family = _family(obj, path)
    if obj.get("fwmark") is not None:
        mark = _int(obj["fwmark"], f"{path}.fwmark", 1, UINT_MAX)
        for k in ("protocol", "address"):
            if obj.get(k) is not None:
                raise DocumentError(f"{path}.{k}", "must be null for a fwmark service")
        if obj.get("port") not in (None, 0):
            raise DocumentError(f"{path}.port", "must be null for a fwmark service")
        af = family if family is not None else m.AF_INET
        key = m.ServiceKey(af=af, fwmark=mark)
    else:
        for k in ("protocol", "address", "port"):
            if obj.get(k) is None:
                raise DocumentError(f"{path}.{k}", "missing (a service needs protocol, address "
                                                   "and port, or a fwmark)")
        proto = _choice(obj["protocol"], f"{path}.protocol", _PROTOCOLS)
        af, addr = _address(obj["address"], f"{path}.address", family)
        port = _int(obj["port"], f"{path}.port", 0, 65535)
        key = m.ServiceKey(af=af, protocol=proto, addr=addr, port=port)

    scheduler = obj.get("scheduler", m.DEFAULT_SCHEDULER)
    if not isinstance(scheduler, str) or not 1 <= len(scheduler.encode()) <= SCHEDNAME_MAX:
        raise DocumentError(f"{path}.scheduler",
                            f"expected a scheduler name of 1..{SCHEDNAME_MAX} bytes, got {_show(scheduler)}")
    flags = _sched_flags(obj.get("sched_flags", []), f"{path}.sched_flags", scheduler)
    persistent = _bool(obj.get("persistent", False), f"{path}.persistent")
    if persistent:
        flags |= m.SVC_F_PERSISTENT
    default_timeout = m.DEFAULT_PERSISTENCE_TIMEOUT if persistent else 0
    timeout = _int(obj.get("timeout", default_timeout), f"{path}.timeout", 0, MAX_TIMEOUT)
    if _bool(obj.get("one_packet", False), f"{path}.one_packet"):
        flags |= m.SVC_F_ONEPACKET
    default_mask = 128 if key.af == m.AF_INET6 else "255.255.255.255"
    netmask = _netmask(obj.get("netmask", default_mask), f"{path}.netmask", key.af)
    pe = obj.get("pe")
    if pe is None:
        pe = ""
    elif not isinstance(pe, str) or not 1 <= len(pe.encode()) <= PENAME_MAX:
        raise DocumentError(f"{path}.pe", f"expected null or a persistence engine name of "
                                          f"1..{PENAME_MAX} bytes, got {_show(pe)}")
    svc = m.Service(key=key, scheduler=scheduler, flags=flags, timeout=timeout,
                    netmask=netmask, pe_name=pe)

    dests_obj = obj.get("destinations", [])
    if not isinstance(dests_obj, list):
        raise DocumentError(f"{path}.destinations", f"expected a list, got {_show(dests_obj)}")
    dests: list[m.Destination] = []
    seen: dict[tuple, int] = {}
    for i, d in enumerate(dests_obj):
        dpath = f"{path}.destinations[{i}]"
        dest = parse_destination(d, dpath, key)
        ident = (dest.af, dest.addr, dest.port)
        if ident in seen:
            raise DocumentError(dpath, f"the same real server as destinations[{seen[ident]}]")
        seen[ident] = i
        dests.append(dest)
    return svc, dests


def parse_destination(obj, path: str, key: m.ServiceKey) -> m.Destination:
    obj = _obj(obj, path, _DEST_KEYS)
    if obj.get("address") is None:
        raise DocumentError(f"{path}.address", "missing")
    af, addr = _address(obj["address"], f"{path}.address", _family(obj, path))
    port = _int(obj.get("port", key.port), f"{path}.port", 0, 65535)
    fwd = _choice(obj.get("forward", "route"), f"{path}.forward", _FORWARDS)
    weight = _int(obj.get("weight", 1), f"{path}.weight", 0, INT_MAX)
    upper = _int(obj.get("u_threshold", 0), f"{path}.u_threshold", 0, UINT_MAX)
    lower = _int(obj.get("l_threshold", 0), f"{path}.l_threshold", 0, UINT_MAX)
    tun_type, tun_port, tun_flags = m.TUN_IPIP, 0, m.TUN_F_NOCSUM
    tunnel = obj.get("tunnel")
    if tunnel is not None:
        tpath = f"{path}.tunnel"
        if fwd != m.FWD_TUNNEL:
            raise DocumentError(tpath, 'must be null unless forward is "tunnel"')
        tunnel = _obj(tunnel, tpath, _TUNNEL_KEYS)
        tun_type = _choice(tunnel.get("type", "ipip"), f"{tpath}.type",
                           {name: i for i, name in enumerate(m.TUN_NAMES)})
        tun_port = _int(tunnel.get("port", 0), f"{tpath}.port", 0, 65535)
        if tun_type == m.TUN_GUE and not tun_port:
            raise DocumentError(f"{tpath}.port", "a gue tunnel needs a port 1..65535")
        tun_flags = _choice(tunnel.get("checksum", "nocsum"), f"{tpath}.checksum", _CHECKSUMS)
    if af != key.af and fwd != m.FWD_TUNNEL:
        raise DocumentError(f"{path}.address", "a real server of another address family than "
                                               "its service needs forward \"tunnel\"")
    return m.Destination(af=af, addr=addr, port=port, fwd=fwd, weight=weight,
                         u_threshold=upper, l_threshold=lower, tun_type=tun_type,
                         tun_port=tun_port, tun_flags=tun_flags)


def parse_document(doc) -> list[tuple[m.Service, list[m.Destination]]]:
    """The table a ``list --json`` document describes; DocumentError if bad."""
    doc = _obj(doc, "", _TOP_KEYS)
    if "services" not in doc:
        raise DocumentError("services", "missing (is this the output of `ipvsctl list --json`?)")
    services = doc["services"]
    if not isinstance(services, list):
        raise DocumentError("services", f"expected a list, got {_show(services)}")
    table = []
    seen: dict[m.ServiceKey, int] = {}
    for i, s in enumerate(services):
        svc, dests = parse_service(s, f"services[{i}]")
        if svc.key in seen:
            raise DocumentError(f"services[{i}]", f"the same service as services[{seen[svc.key]}]")
        seen[svc.key] = i
        table.append((svc, dests))
    return table


def loads(text: str) -> list[tuple[m.Service, list[m.Destination]]]:
    """Parse JSON text and check it; DocumentError (with line and column) if bad."""
    import json

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise DocumentError("", f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    return parse_document(doc)


# --------------------------------------------------------------------------
# Applying
# --------------------------------------------------------------------------


@dataclass
class Outcome:
    applied: int = 0  # requests of the document (the flush not counted)
    failures: list[str] = field(default_factory=list)  # one line each
    services: int = 0
    destinations: int = 0
    refused: int = 0  # requests of the document the kernel refused
    signum: int | None = None  # a signal came while sending
    stopped: str | None = None  # ... and this request (a path) was the first not sent
    last: str | None = None  # the last request sent (a path)
    broken: b.BatchBroken | None = None  # the conversation broke off
    unknown: tuple[str, str] | None = None  # ... and these requests (paths) may have been applied

    def failed(self) -> str:
        """'K of M requests failed' (the flush is no request of the document)."""
        return f"{self.refused} of {self.services + self.destinations} requests failed"

    def summary(self) -> str:
        """The closing line when something failed, in words that match it."""
        if self.refused == 0:
            return "restore: every request of the document was applied, but not the flush"
        if self.applied == 0:
            return f"restore: {self.failed()}; none was applied"
        return f"restore: {self.failed()}; the other {self.applied} were applied"

    def account(self) -> str:
        """The closing line of a restore that stopped early, or ''."""
        from ipvsctl.errors import kernel_message
        from ipvsctl.interrupt import signal_name

        counts = f"{self.applied} applied, {self.refused} failed"
        if self.broken is not None:
            first, last = self.unknown
            maybe = first if first == last else f"{first} to {last}"
            done = f"the requests before it: {counts}" if self.last else "nothing before it"
            rest = f"; from {self.stopped} on nothing was sent" if self.stopped else ""
            return (f"restore: the kernel conversation broke off at {first} "
                    f"({kernel_message(self.broken.op, self.broken.errno)}); {done}; {maybe} may or "
                    f"may not have been applied (read the table back){rest}")
        if self.signum is None:
            return ""
        why = f"restore: interrupted by {signal_name(self.signum)}"
        if self.stopped is None:
            return f"{why} after the last request was sent: nothing was left to stop ({counts})"
        if self.last is None:
            return f"{why} before anything was sent: nothing was applied (the kernel table is unchanged)"
        return (f"{why}: every request up to {self.last} was sent ({counts}); "
                f"from {self.stopped} on nothing was applied")


def requests(table, flush: bool = False) -> tuple[list[b.Request], list[str]]:
    """The requests that build ``table``, and for each the path it comes from."""
    reqs: list[b.Request] = []
    where: list[str] = []
    if flush:
        reqs.append(b.Request(b.OP_FLUSH))
        where.append("flush")
    for i, (svc, dests) in enumerate(table):
        reqs.append(b.Request(b.OP_ADD_SERVICE, service=svc))
        where.append(f"services[{i}]")
        for j, d in enumerate(dests):
            reqs.append(b.Request(b.OP_ADD_DEST, service=svc.key, dest=d))
            where.append(f"services[{i}].destinations[{j}]")
    return reqs, where


def _describe(req: b.Request) -> str:
    from ipvsctl.render.table import host_port, service_label

    if req.op == b.OP_FLUSH or req.service is None:
        return "flush"
    key = req.service.key if isinstance(req.service, m.Service) else req.service
    if req.op == b.OP_ADD_DEST and req.dest is not None:
        return f"{service_label(key)} -> {host_port(req.dest.af, req.dest.addr, req.dest.port)}"
    return service_label(key)


def apply(backend, table, flush: bool = False, guard=None) -> Outcome:
    """Send everything in pipelined windows; every refusal is reported.
    ``guard`` (interrupt.Guard, noting): once it has noted a signal, nothing
    more is sent after the window in flight."""
    from ipvsctl.errors import kernel_message, loopback_hint

    reqs, where = requests(table, flush)
    out = Outcome(services=len(table), destinations=sum(len(d) for _, d in table))
    batch = b.batch_for(backend)
    for req in reqs:
        batch.add(req)
    should_stop = guard.interrupted if guard is not None else None
    try:
        errors, reached = batch.send(0, len(reqs), should_stop)
    except b.BatchBroken as e:
        errors, reached = e.errors, e.done
        out.broken = e
        out.unknown = (where[e.done], where[e.unknown - 1])
        out.stopped = where[e.unknown] if e.unknown < len(reqs) else None
    for i in range(reached):
        req = reqs[i]
        e = errors.get(i)
        if e is None:
            if req.op != b.OP_FLUSH:
                out.applied += 1
            continue
        if req.op != b.OP_FLUSH:
            out.refused += 1
        line = f"{where[i]} ({_describe(req)}): {kernel_message(req.op, e)}"
        extra = loopback_hint(req, e, backend)
        out.failures.append(line + (f"\n  {extra}" if extra else ""))
    if reached and where[reached - 1] != "flush":
        out.last = where[reached - 1]
    if guard is not None and guard.signum is not None:
        out.signum = guard.signum
        if out.broken is None and reached < len(reqs):
            out.stopped = where[reached]
    return out
