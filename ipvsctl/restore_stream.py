"""Whole-stream parsing of the lines ipvsadm -S writes, for `-R`.

Strategy: a saved table is almost entirely two shapes,

    -A -t 10.0.0.1:80 -s rr [-p 300]
    -a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 1

so a block of whole lines (a MiB of them) is read by one compiled pattern,
one ``findall`` giving one tuple per line, in order.  A line of either
shape, spelt exactly so (single spaces, an IPv4 dotted quad, a port from 1
up written without leading zeros, a weight in range), is checked and added
right here: a real server's request packed straight into the batch from a
template per service (``EncodedBatch.v4_dests``), a service as its Request.
Every other line, and any of those shapes whose values this module is not
sure of (an address inet_aton refuses, a port over 65535, ...), goes
through ``add_line``: the general per-line path (fastline, then the
grammar), which stays the one definition of the language and of its error
messages.  What this module accepts is a strict subset of what
``fastline`` accepts, and gives the very same request:
tests/unit/test_restore_stream.py holds them together byte for byte.
"""

from __future__ import annotations

import _socket
import re

from ipvsctl import backend as b
from ipvsctl import model as m
from ipvsctl.fastline import service_key_of_text
from ipvsctl.vocab import INT_MAX, MAX_TIMEOUT, PORT_MAX

_ADDR = r"(?:\d{1,3}\.){3}\d{1,3}"
_PORT = r"[1-9]\d{0,4}"
# One alternative per shape, then any other line: every line of a block
# (each ends with "\n") gives exactly one match, so a match's index is its
# line's.  Groups (each costs a string per line, so few): real server
# (protocol and service, address, port, method, weight), service (protocol
# and service, scheduler, persistence), any other line.
LINES = re.compile(
    rf"-a -([tu] {_ADDR}:{_PORT}) -r ({_ADDR}):({_PORT}) -([mgi]) -w (0|[1-9]\d{{0,9}})\n"
    rf"|-A -([tu] {_ADDR}:{_PORT}) -s ([a-z]{{1,15}})(?: -p ([1-9]\d{{0,9}}))?\n"
    r"|([^\n]*)\n", re.ASCII)  # ASCII: \d is 0-9 only, not every script's digits
#: Services' prefixes kept at most (then forgotten, made again when named):
#: a dump names a service on its real servers' lines, one after the other.
SERVICES_KEPT = 1 << 10
#: Characters read by one findall: its list holds ~300 bytes a line, so a
#: block of ~3,000 lines keeps that under a MiB (a million-line restore
#: holds ~160 MB of requests already).
BLOCK = 1 << 17
_FWD = {"m": m.FWD_MASQ, "g": m.FWD_ROUTE, "i": m.FWD_TUNNEL}
_inet_aton = _socket.inet_aton


def blocks_of(chunks):
    """The text of ``chunks`` as blocks of whole lines, each ending with
    "\\n" (the last line given one if it had none), no more than a chunk
    held at once; the lines are those ``restore.lines_of`` gives, less a
    last empty one."""
    rest = ""
    for chunk in chunks:
        text = rest + chunk if rest else chunk
        start, end = 0, len(text)
        while True:
            cut = text.rfind("\n", start, start + BLOCK) + 1 if end - start > BLOCK else 0
            if not cut:  # the rest of the chunk, up to its last newline
                cut = text.rfind("\n", start) + 1
                if cut:
                    yield text[start:cut]
                break
            yield text[start:cut]
            start = cut
        rest = text[cut or start:]
    if rest:
        yield rest + "\n"


def plan_block(text: str, first_no: int, planner, dests, dest_code: int, services: dict) -> int:
    """Plan the lines of ``text``, numbered from ``first_no``: the two shapes
    here, every other line by ``planner.line(line_no, line)``; a service's
    Request by ``planner.request``, a real server's packed by ``dests`` (an
    EncodedBatch's ``V4Dests``) with its line and ``dest_code`` in
    ``planner.p``.
    ``services``: what this stream's services' text gave so far (kept
    between blocks).  Returns the next line number."""
    p = planner.p
    add_line, add_op = p.lines.append, p.ops.append
    data, add_end, pack, tail = dests.data, dests.ends.append, dests.pack, dests.tail
    w_port, w_fwd, w_weight = dests.words
    fwds, aton, masq, htons = _FWD, _inet_aton, m.FWD_MASQ, _socket.htons
    no = first_no - 1
    for no, (svc, addr, port, fwd, weight, s_svc, sched, timeout, other) in \
            enumerate(LINES.findall(text), first_no):
        if svc:
            known = services.get(svc)
            if known is None:
                if len(services) >= SERVICES_KEPT:
                    services.clear()
                known = services[svc] = _service(svc, dests)
            w = int(weight)
            d_port = int(port)
            if known and w <= INT_MAX and d_port <= PORT_MAX:
                d_port = htons(d_port)
                try:
                    addr4 = aton(addr)
                except OSError:
                    addr4 = None
                if addr4 is not None:
                    f = fwds[fwd]
                    data += pack(known[0], addr4, w_port, d_port if f == masq else known[1], w_fwd, f,
                                 w_weight, w, tail)
                    add_end(len(data))
                    add_line(no)
                    add_op(dest_code)
                    continue
            planner.line(no, f"-a -{svc} -r {addr}:{port} -{fwd} -w {weight}")
        elif s_svc:
            key = service_key_of_text("-" + s_svc[0], s_svc[2:])
            t = int(timeout) if timeout else 0
            if key is not None and t <= MAX_TIMEOUT:
                service = m.Service(key=key, scheduler=sched, flags=m.SVC_F_PERSISTENT if timeout else 0,
                                    timeout=t)
                planner.request(no, b.Request(b.OP_ADD_SERVICE, service=service))
                continue
            planner.line(no, f"-A -{s_svc} -s {sched}" + (f" -p {timeout}" if timeout else ""))
        else:
            planner.line(no, other)
    return no + 1


def _service(svc: str, dests):
    """(``dests``' prefix for the service "t 10.0.0.1:80", its port), or
    () when fastline does not take it either."""
    key = service_key_of_text("-" + svc[0], svc[2:])
    return () if key is None else (dests.prefix(key), _socket.htons(key.port))
