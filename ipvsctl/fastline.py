"""A shortcut through the grammar for the line shapes that fill rule dumps.

Strategy: a saved table is almost entirely lines like

    -A -t 10.0.0.1:80 -s rr [-p 300]
    -a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 1

``request(words)`` recognises exactly such lines (IPv4 service and real
server with numeric ports, separate words, each option once, nothing
ipvsadm would refuse) and builds their ``Request`` directly, skipping the
general option machinery and the ``Command`` object.  Anything else, and
anything it is not sure of, returns None and goes through ``grammar.parse``,
which stays the one definition of the language.  tests/unit/test_fastline.py
checks that both give the same Request for every line the shortcut takes.
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py's enum classes cost ~6 ms of start-up

from ipvsctl import backend as b
from ipvsctl import model as m
from ipvsctl import vocab as v
from ipvsctl.cache import BoundedCache
from ipvsctl.command import service_key_of
from ipvsctl.cvalues import c_prefix
from ipvsctl.vocab import INT_MAX, MAX_TIMEOUT, SCHEDNAME_MAX

# The spellings this shortcut takes (SCTP services and the long spellings of
# the forwarding methods go through the grammar).
_PROTOCOLS = {spelling: p.number for p in v.PROTOCOLS if p.short for spelling in (p.short, p.option)}
_FWD = {f.short: f.number for f in v.FORWARDS if f.short}
_SERVICE_OPS = {"-A": b.OP_ADD_SERVICE, "-E": b.OP_EDIT_SERVICE}
_DEST_OPS = {"-a": b.OP_ADD_DEST, "-e": b.OP_EDIT_DEST}
_inet_aton = socket.inet_aton
_ntoa = socket.inet_ntoa


def _v4_addr_port(text: str):
    """'a.b.c.d:port' with a numeric port, as (packed, port); else None."""
    host, sep, port = text.partition(":")
    if not sep or not port.isdigit() or not port.isascii() or ":" in port or not host[:1].isdigit():
        return None
    n = int(port)
    if n > v.PORT_MAX:
        return None
    try:
        return _inet_aton(host), n
    except (OSError, UnicodeError):  # UnicodeError: bytes that were not UTF-8
        return None


def _number(text: str, hi: int):
    if text.isdigit() and text.isascii():
        n = int(text)
        if n <= hi:
            return n
    return None


def _key_of_text(switch_text: tuple[str, str]) -> m.ServiceKey | None:
    switch, text = switch_text
    svc = _v4_addr_port(text)
    return None if svc is None else service_key_of(m.AF_INET, _PROTOCOLS[switch], svc[0], svc[1], 0)


# ("-t", "10.0.0.1:80") -> its ServiceKey (None: not a shape this module
# takes): a dump names each service again on every real-server line.
_KEYS_BY_TEXT = BoundedCache(1 << 16, _key_of_text)


def service_key_of_text(switch: str, text: str) -> m.ServiceKey | None:
    """The ServiceKey of ("-t", "10.0.0.1:80"), or None: not a shape this module takes."""
    return _KEYS_BY_TEXT[(switch, text)]


def request(words: list[str]) -> b.Request | None:
    """The Request of a common line, or None to let the grammar decide."""
    cmd = words[0]
    if cmd in _SERVICE_OPS:
        return _service_line(words, _SERVICE_OPS[cmd])
    if cmd in _DEST_OPS:
        return _dest_line(words, _DEST_OPS[cmd])
    return None


def _service_line(words, op):
    protocol = svc = None
    scheduler = m.DEFAULT_SCHEDULER
    flags = timeout = 0
    seen = set()
    i, n = 1, len(words)
    while i < n:
        w = words[i]
        if w in seen:
            return None
        seen.add(w)
        if w in _PROTOCOLS:
            if protocol is not None or i + 1 >= n:
                return None
            protocol = _PROTOCOLS[w]
            svc = _v4_addr_port(words[i + 1])
            if svc is None:
                return None
            i += 2
        elif w == "-s":
            if i + 1 >= n or words[i + 1][:1] == "-" or not words[i + 1]:
                return None
            scheduler = c_prefix(words[i + 1], SCHEDNAME_MAX)
            i += 2
        elif w == "-p":
            flags |= m.SVC_F_PERSISTENT
            if i + 1 < n and words[i + 1][:1] != "-":
                timeout = _number(words[i + 1], MAX_TIMEOUT)
                if not timeout:
                    return None
                i += 2
            else:
                timeout = m.DEFAULT_PERSISTENCE_TIMEOUT
                i += 1
        else:
            return None
    if svc is None or (svc[1] == 0 and not flags):
        return None
    key = service_key_of(m.AF_INET, protocol, svc[0], svc[1], 0)
    return b.Request(op, service=m.Service(key=key, scheduler=scheduler, flags=flags, timeout=timeout))


def _dest_line(words, op):
    # The exact shape ipvsadm -S writes ("-a -t S -r R -m -w N"), checked at
    # fixed positions first: most of a dump, at a third of the general
    # loop's cost.  Anything else about it goes through the loop below.
    if (len(words) == 8 and words[3] == "-r" and words[6] == "-w" and words[1] in _PROTOCOLS
            and words[5] in _FWD):
        key = service_key_of_text(words[1], words[2])
        dest = _v4_addr_port(words[4])
        weight = _number(words[7], INT_MAX)
        if key is not None and dest is not None and weight is not None:
            fwd = _FWD[words[5]]
            d = m.Destination(m.AF_INET, _ntoa(dest[0]), key.port if fwd != m.FWD_MASQ else dest[1],
                              fwd, weight)
            return b.Request(op, service=key, dest=d)
    protocol = svc = dest = None
    fwd = m.FWD_ROUTE
    weight, u_thresh, l_thresh = 1, 0, 0
    seen = set()
    i, n = 1, len(words)
    while i < n:
        w = words[i]
        if w in _FWD:
            if "fwd" in seen:
                return None
            seen.add("fwd")
            fwd = _FWD[w]
            i += 1
            continue
        if w in seen or i + 1 >= n:
            return None
        seen.add(w)
        v = words[i + 1]
        i += 2
        if w in _PROTOCOLS:
            if protocol is not None:
                return None
            protocol = _PROTOCOLS[w]
            svc = _v4_addr_port(v)
            if svc is None:
                return None
        elif w == "-r":
            if protocol is None:  # the real server's port default is read from -t
                return None
            dest = _v4_addr_port(v)
            if dest is None:
                return None
        elif w == "-w":
            weight = _number(v, INT_MAX)
            if weight is None:
                return None
        elif w == "-x":
            u_thresh = _number(v, INT_MAX)
            if u_thresh is None:
                return None
        elif w == "-y":
            l_thresh = _number(v, INT_MAX)
            if l_thresh is None:
                return None
        else:
            return None
    if svc is None or dest is None:
        return None
    port = svc[1] if fwd != m.FWD_MASQ else dest[1]
    key = service_key_of(m.AF_INET, protocol, svc[0], svc[1], 0)
    d = m.Destination(m.AF_INET, _ntoa(dest[0]), port, fwd, weight, u_thresh, l_thresh)
    return b.Request(op, service=key, dest=d)

