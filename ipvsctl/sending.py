"""Sending change requests, pipelined, and every refusal in ipvsadm's words.

Strategy: ``-R`` (restore.apply), ``restore --json`` (jsonrestore.apply) and
the put-back of a restore that cleared the table (undo.put_back) all send
through ``send_held``: the requests wait in a ``backend.Batch`` (a backend's
own holds them encoded, netlink.backend.EncodedBatch), go out one transport
window at a time, and each request the kernel refused comes back as a
``Refusal``, with ipvsadm's message and the hint on its likely cause.  Each
caller names where a request came from its own way (a line number, a field
of the document, nothing for the snapshot), so ``where(i)`` is the caller's;
the requests before ``counted_from`` (the ``--flush`` of a restore) are no
part of the input: not counted as applied, and their refusals have no
``where``.

Where it stops: ``should_stop()`` (a signal noted by interrupt.Guard) is
asked before each window, and a fault of the conversation (no answer in
time, a refused send) ends it; either way ``Sent`` says exactly which
requests have their outcome (before ``reached``) and, after a fault, which
were sent but may or may not have been applied (``broken``).  ``account``
says so in one line, the one wording every restore uses.
"""

from __future__ import annotations

from ipvsctl import backend as b


class Refusal:
    """A request the kernel refused: its ``index`` in the batch, ``where``
    it came from (None: no part of the input), its operation ``op``,
    ipvsadm's ``message`` for it and a ``hint`` (a sentence on the likely
    cause, or '')."""

    __slots__ = ("index", "where", "op", "message", "hint")

    def __init__(self, index: int, where, op: str, message: str, hint: str):
        self.index = index
        self.where = where
        self.op = op
        self.message = message
        self.hint = hint


class Sent:
    """What sending requests [start, stop) did: how many of the input the
    kernel accepted, the refusals in the order of the requests, ``reached``
    (the first request with no outcome: not sent, or sent in the window a
    fault hit) and ``broken`` (that fault: a BatchBroken whose
    ``[done, unknown)`` may or may not have been applied), or None."""

    __slots__ = ("applied", "refusals", "reached", "broken")

    def __init__(self):
        self.applied = 0
        self.refusals: list[Refusal] = []
        self.reached = 0
        self.broken: b.BatchBroken | None = None


def send_held(backend, batch, where, op_of, start: int = 0, stop: int | None = None,
              should_stop=None, counted_from: int = 0) -> Sent:
    """Send requests [start, stop) of ``batch`` in order, pipelined, and
    report each refusal: ``where(i)`` and ``op_of(i)`` name request i for
    the report.  Stops before a window once ``should_stop()`` is true, and
    at a fault of the conversation (see the module)."""
    from ipvsctl.errors import kernel_message, loopback_hint

    stop = len(batch) if stop is None else stop
    sent = Sent()
    try:
        errors, reached = batch.send(start, stop, should_stop)
    except b.BatchBroken as e:
        # Reports that came from the broken window leave it unknown all the same.
        errors = {i: err for i, err in e.errors.items() if i < e.done}
        reached = e.done
        sent.broken = e
    sent.reached = reached
    refused = 0
    for i in sorted(errors):
        errno, op = errors[i], op_of(i)
        counted = i >= counted_from
        refused += counted
        sent.refusals.append(Refusal(i, where(i) if counted else None, op, kernel_message(op, errno),
                                     loopback_hint(op, errno, backend)))
    sent.applied = max(0, reached - max(start, counted_from)) - refused
    return sent


def send(backend, items, should_stop=None) -> Sent:
    """``send_held`` for a list of (where, Request) pairs; the pairs at the
    head whose ``where`` is None are no part of the input (a flush; the
    whole of a put-back): not counted as applied."""
    items = items if isinstance(items, list) else list(items)
    batch = b.batch_for(backend)
    for _, req in items:
        batch.add(req)
    head = next((i for i, (where, _) in enumerate(items) if where is not None), len(items))
    return send_held(backend, batch, lambda i: items[i][0], lambda i: items[i][1].op,
                     should_stop=should_stop, counted_from=head)


def account(noun: str, counts: str, signum=None, broken=None, stopped: bool = False,
            last: str = "", following: str = "", unknown_at: str = "", unknown: str = "") -> str:
    """The closing line of a restore that stopped early, or '' when it did not.

    ``noun``: what the input is made of ("line", "request"); ``counts``: 'A
    applied, F failed ...' of what has its outcome; ``signum``: the signal
    noted while sending, if any, and ``stopped``: whether requests were left
    unsent for it; ``broken``: the fault that ended the conversation, if one
    did.  Places are named as the caller names them ("line 12",
    "services[3]"): ``last`` the last sent with its outcome known ('' if
    none), ``following`` the first not sent ('' if none); after a fault,
    ``unknown_at`` the first request of the window it hit and ``unknown``
    that window ("lines 3 to 9")."""
    from ipvsctl.errors import kernel_message
    from ipvsctl.interrupt import signal_name

    if broken is not None:
        done = f"the {noun}s before it: {counts}" if last else "nothing before it"
        rest = f"; from {following} on nothing was sent" if following else ""
        return (f"restore: the kernel conversation broke off at {unknown_at} "
                f"({kernel_message(broken.op, broken.errno)}); {done}; {unknown} may or may not "
                f"have been applied (read the table back){rest}")
    if signum is None:
        return ""
    why = f"restore: interrupted by {signal_name(signum)}"
    if not stopped:
        return f"{why} after the last {noun} was sent: nothing was left to stop ({counts})"
    if not last:
        return f"{why} before anything was sent: nothing was applied (the kernel table is unchanged)"
    return (f"{why}: every {noun} up to {last} was sent ({counts}); "
            f"from {following} on nothing was applied")


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
