"""Sending change requests in one pipelined batch, and every refusal in
ipvsadm's words.

Strategy: ``-R`` (restore.apply), ``restore --json`` (jsonrestore.apply) and
the put-back of a restore that cleared the table (undo.put_back) all send a
batch through ``Backend.apply_many`` and report each request the kernel
refused, with ipvsadm's message and the hint on its likely cause; each
names where a request came from its own way (a line number, a field of the
document, an entry of the snapshot), so a request travels here with its
``where``.  ``None`` marks a request that is no part of the input (the
``--flush`` of a restore): it is not counted as applied.
"""

from __future__ import annotations

from ipvsctl import backend as b


class Refusal:
    """A request the kernel refused: ``where`` it came from, the
    ``request``, ipvsadm's ``message`` for it and a ``hint`` (a sentence on
    the likely cause, or '')."""

    __slots__ = ("where", "request", "message", "hint")

    def __init__(self, where, request: b.Request, message: str, hint: str):
        self.where = where
        self.request = request
        self.message = message
        self.hint = hint


class Sent:
    """What one batch did: how many requests of the input the kernel
    accepted, and the refusals, in the order of the requests."""

    __slots__ = ("applied", "refusals")

    def __init__(self):
        self.applied = 0
        self.refusals: list[Refusal] = []


def send(backend, items) -> Sent:
    """Apply ``items`` ((where, Request) pairs) in order, pipelined.  A fault
    of the conversation itself raises KernelError (the callers say what
    that means for them)."""
    from ipvsctl.errors import kernel_message, loopback_hint

    items = items if isinstance(items, list) else list(items)
    errors = backend.apply_many([req for _, req in items])
    sent = Sent()
    for i, (where, req) in enumerate(items):
        e = errors.get(i)
        if e is None:
            if where is not None:
                sent.applied += 1
            continue
        sent.refusals.append(Refusal(where, req, kernel_message(req.op, e.errno),
                                     loopback_hint(req, e.errno, backend)))
    return sent


def describe(req: b.Request) -> str:
    """What a request is about, for a report: 'TCP 192.0.2.1:80',
    'TCP 192.0.2.1:80 -> 198.51.100.1:80'; 'clear' and 'timeouts' for the
    requests that name neither."""
    from ipvsctl.labels import host_port, service_label
    from ipvsctl.model import Service

    if req.op == b.OP_FLUSH:
        return "clear"
    if req.op == b.OP_SET_TIMEOUTS:
        return "timeouts"
    if req.service is None:
        return req.op  # zero everything, daemons: what it does
    key = req.service.key if isinstance(req.service, Service) else req.service
    if req.dest is not None:
        return f"{service_label(key)} -> {host_port(req.dest.af, req.dest.addr, req.dest.port)}"
    return service_label(key)
