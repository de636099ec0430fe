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
import sys
from dataclasses import dataclass, field

from ipvsctl import backend as b
from ipvsctl import model as m
from ipvsctl import vocab as v
from ipvsctl.vocab import INT_MAX, MAX_TIMEOUT, PENAME_MAX, PORT_MAX, SCHEDNAME_MAX, UINT_MAX

_TOP_KEYS = {"services", "version", "conn_tab_size"}
_SERVICE_KEYS = {"family", "protocol", "address", "port", "fwmark", "scheduler", "sched_flags",
                 "persistent", "timeout", "netmask", "pe", "one_packet", "destinations",
                 "stats", "rates"}
_DEST_KEYS = {"family", "address", "port", "forward", "weight", "u_threshold", "l_threshold",
              "tunnel", "active_conns", "inact_conns", "persist_conns", "stats", "rates"}
_TUNNEL_KEYS = {"type", "port", "checksum"}
BOM = "\ufeff"


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


class _Twice(dict):
    """An object in which ``key`` was given more than once (json.loads would
    keep the last silently: a second "weight" must not win unseen)."""

    key = ""


def _pairs(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        twice = _Twice(obj)
        seen = set()
        twice.key = next(k for k, _ in pairs if k in seen or seen.add(k))
        return twice
    return obj


def _obj(value, path: str, allowed: set) -> dict:
    if not isinstance(value, dict):
        raise DocumentError(path, f"expected an object, got {_show(value)}")
    if type(value) is _Twice:
        raise DocumentError(f"{path}.{value.key}" if path else value.key,
                            "given more than once in one object")
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
            want = v.FAMILIES.name(family)
            raise DocumentError(path, f"{_show(value)} is not an {want} address (see family)")
        return af, canonical
    raise DocumentError(path, f"{_show(value)} is not an IPv4 or IPv6 address")


def _family(obj: dict, path: str) -> int | None:
    if obj.get("family") is None:
        return None
    return _choice(obj["family"], f"{path}.family", v.FAMILIES.numbers)


def _name(value, path: str, what: str, most: int) -> str:
    """A scheduler or engine name: 1..most bytes of UTF-8 the kernel can take."""
    try:
        size = len(value.encode()) if isinstance(value, str) else 0
    except UnicodeEncodeError:  # a lone surrogate, as "\udcff" in JSON writes one
        raise DocumentError(path, f"{_show(value)} is not text (a lone surrogate)") from None
    if not 1 <= size <= most:
        raise DocumentError(path, f"expected {what} of 1..{most} bytes, got {_show(value)}")
    # A JSON string may hold "\u0000"; the kernel would read the name only up
    # to it, and no module name, file name or command argument can hold one.
    if "\x00" in value:
        raise DocumentError(path, f"{_show(value)} holds a NUL character")
    return value


def _sched_flags(value, path: str, scheduler: str) -> int:
    if not isinstance(value, list):
        raise DocumentError(path, f"expected a list of flag names, got {_show(value)}")
    flags = 0
    for i, name in enumerate(value):
        flag = v.SCHED_FLAGS.get(name) if isinstance(name, str) else None
        if flag is None:
            names = ", ".join(v.SCHED_FLAGS)
            raise DocumentError(f"{path}[{i}]", f"expected one of {names}, got {_show(name)}")
        if flag.scheduler is not None and flag.scheduler != scheduler:
            raise DocumentError(f"{path}[{i}]", f'"{name}" is a flag of the {flag.scheduler} '
                                                f'scheduler, not of {scheduler}')
        flags |= flag.bit
    return flags


def _netmask(value, path: str, af: int) -> int:
    if af == m.AF_INET6:
        return _int(value, path, 1, 128)
    if isinstance(value, str):
        try:
            return int.from_bytes(socket.inet_pton(m.AF_INET, value), "big")
        except (OSError, ValueError):  # ValueError: a NUL in the string
            pass
    raise DocumentError(path, f'expected an IPv4 netmask like "255.255.255.0", got {_show(value)}')


def parse_service(obj, path: str) -> tuple[m.Service, list[m.Destination]]:
    obj = _obj(obj, path, _SERVICE_KEYS)
    family = _family(obj, path)
    if obj.get("fwmark") is not None:
        mark = _int(obj["fwmark"], f"{path}.fwmark", 1, UINT_MAX)
        for k in ("protocol", "address"):
            if obj.get(k) is not None:
                raise DocumentError(f"{path}.{k}", "must be null for a fwmark service")
        port = obj.get("port")
        # 0 is what the kernel reports; `in (None, 0)` would let false and 0.0 by.
        if port is not None and (type(port) is not int or port != 0):
            raise DocumentError(f"{path}.port", "must be null for a fwmark service")
        af = family if family is not None else m.AF_INET
        key = m.ServiceKey(af=af, fwmark=mark)
    else:
        for k in ("protocol", "address", "port"):
            if obj.get(k) is None:
                raise DocumentError(f"{path}.{k}", "missing (a service needs protocol, address "
                                                   "and port, or a fwmark)")
        proto = _choice(obj["protocol"], f"{path}.protocol", v.PROTOCOLS.numbers)
        af, addr = _address(obj["address"], f"{path}.address", family)
        port = _int(obj["port"], f"{path}.port", 0, PORT_MAX)
        key = m.ServiceKey(af=af, protocol=proto, addr=addr, port=port)

    scheduler = _name(obj.get("scheduler", m.DEFAULT_SCHEDULER), f"{path}.scheduler",
                      "a scheduler name", SCHEDNAME_MAX)
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
    pe = "" if pe is None else _name(pe, f"{path}.pe", "null or a persistence engine name",
                                     PENAME_MAX)
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
    port = _int(obj.get("port", key.port), f"{path}.port", 0, PORT_MAX)
    fwd = _choice(obj["forward"], f"{path}.forward", v.FORWARDS.numbers) if "forward" in obj else m.FWD_ROUTE
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
        tun_type = (_choice(tunnel["type"], f"{tpath}.type", v.TUNNELS.numbers) if "type" in tunnel
                    else m.TUN_IPIP)
        tun_port = _int(tunnel.get("port", 0), f"{tpath}.port", 0, PORT_MAX)
        if tun_type == m.TUN_GUE and not tun_port:
            raise DocumentError(f"{tpath}.port", "a gue tunnel needs a port 1..65535")
        tun_flags = (_choice(tunnel["checksum"], f"{tpath}.checksum", v.CHECKSUMS.numbers)
                     if "checksum" in tunnel else m.TUN_F_NOCSUM)
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

    # A byte order mark is what some editors put first; it is no content
    # (json.loads refuses it, and it would hide the "{" that marks JSON).
    text = text[1:] if text.startswith(BOM) else text
    try:
        doc = json.loads(text, object_pairs_hook=_pairs)
    except json.JSONDecodeError as e:
        raise DocumentError("", f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:  # the C decoder recurses per nested array or object
        raise DocumentError("", "not a usable JSON document: arrays or objects nested too deeply") from None
    except ValueError:  # not a JSONDecodeError: an integer past Python's digit limit
        raise DocumentError("", "not a usable JSON document: a number with more digits than "
                                f"Python reads ({sys.get_int_max_str_digits()})") from None
    return parse_document(doc)


# --------------------------------------------------------------------------
# Applying
# --------------------------------------------------------------------------


@dataclass
class Restored:
    """What a restore of a document did: counts and a line per refusal."""

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
        from ipvsctl.sending import account

        first, last = self.unknown or ("", "")
        return account("request", f"{self.applied} applied, {self.refused} failed", self.signum,
                       self.broken, self.stopped is not None, last=self.last or "",
                       following=self.stopped or "", unknown_at=first,
                       unknown=first if first == last else f"{first} to {last}")


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


def apply(backend, table, flush: bool = False, guard=None) -> Restored:
    """Send everything in pipelined windows (sending.send_held, as -R does);
    every refusal is reported, by its path in the document.  ``guard``
    (interrupt.Guard, noting): once it has noted a signal, nothing more is
    sent after the window in flight."""
    from ipvsctl import sending

    reqs, where = requests(table, flush)
    out = Restored(services=len(table), destinations=sum(len(d) for _, d in table))
    batch = b.batch_for(backend)
    for req in reqs:
        batch.add(req)
    # The flush is no request of the document: not counted, no path.
    sent = sending.send_held(backend, batch, where.__getitem__, lambda i: reqs[i].op,
                             should_stop=guard.interrupted if guard is not None else None,
                             counted_from=int(flush))
    out.applied = sent.applied
    for r in sent.refusals:
        if r.where is None:
            line = f"flush (flush): {r.message}"
        else:
            out.refused += 1
            line = f"{r.where} ({sending.describe(reqs[r.index])}): {r.message}"
        out.failures.append(line + (f"\n  {r.hint}" if r.hint else ""))
    reached, e = sent.reached, sent.broken
    if reached and where[reached - 1] != "flush":
        out.last = where[reached - 1]
    if e is not None:
        out.broken = e
        out.unknown = (where[e.done], where[e.unknown - 1])
        out.stopped = where[e.unknown] if e.unknown < len(reqs) else None
    elif guard is not None and guard.signum is not None and reached < len(reqs):
        out.stopped = where[reached]
    if guard is not None:
        out.signum = guard.signum
    return out
