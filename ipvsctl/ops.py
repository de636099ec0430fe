"""What each ipvsadm command means, as functions over a Backend.

Strategy: ``execute`` takes a parsed ``Command`` and a backend and returns
(exit status, stdout text, stderr text) without printing, so the command line
and the restore stream share one implementation and tests can call it
in-process.  Changes become ``Request`` values (``to_request``), which is what
lets a restore batch thousands of them into a few system calls.
"""

from __future__ import annotations

from ipvsctl import backend as b
from ipvsctl import listing
from ipvsctl import model as m
from ipvsctl.errors import kernel_message, loopback_hint
from ipvsctl.vocab import EXIT_KERNEL, EXIT_OK
from ipvsctl.command import Command
from ipvsctl.render import text

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: collections.abc imports collections (start-up time)
    from collections.abc import Iterable, Iterator


class Outcome:
    """What a command prints and returns (a plain class: see model.immutable
    for why nothing on the command path uses dataclasses).

    ``out`` is a str, or an iterable of str written one after the other:
    a big listing is rendered piece by piece as it is written, never whole
    (``text`` joins it, once, for whoever needs one string).
    """

    __slots__ = ("status", "out", "err")

    def __init__(self, status: int = EXIT_OK, out: str | Iterable[str] = "", err: str = ""):
        self.status = status
        self.out = out
        self.err = err

    @property
    def text(self) -> str:
        if not isinstance(self.out, str):
            self.out = "".join(self.out)
        return self.out

    def __eq__(self, other):
        if not isinstance(other, Outcome):
            return NotImplemented
        return (self.status, self.text, self.err) == (other.status, other.text, other.err)

    def __repr__(self) -> str:
        return f"Outcome(status={self.status!r}, out={self.text!r}, err={self.err!r})"


_CHANGE_OPS = {
    "add-service": b.OP_ADD_SERVICE,
    "edit-service": b.OP_EDIT_SERVICE,
    "delete-service": b.OP_DEL_SERVICE,
    "flush": b.OP_FLUSH,
    "zero": b.OP_ZERO,
    "add-server": b.OP_ADD_DEST,
    "edit-server": b.OP_EDIT_DEST,
    "delete-server": b.OP_DEL_DEST,
    "set": b.OP_SET_TIMEOUTS,
    "start-daemon": b.OP_START_DAEMON,
    "stop-daemon": b.OP_STOP_DAEMON,
}


def is_change(cmd: Command) -> bool:
    return cmd.name in _CHANGE_OPS


def _zero_target(cmd: Command) -> m.ServiceKey | None:
    # ipvsadm zeroes one service only when the line names a mark, a non-zero
    # address or a port; "-Z -t 0.0.0.0:0" zeroes everything.
    if "service-address" not in cmd.options:
        return None
    if cmd.fwmark or cmd.port or (cmd.addr and any(cmd.addr)):
        return cmd.service_key()
    return None


def to_request(cmd: Command) -> b.Request:
    """The kernel change a parsed change command asks for."""
    op = _CHANGE_OPS[cmd.name]
    if op in (b.OP_ADD_SERVICE, b.OP_EDIT_SERVICE):
        return b.Request(op, service=cmd.service())
    if op == b.OP_DEL_SERVICE:
        return b.Request(op, service=cmd.service_key())
    if op == b.OP_ZERO:
        return b.Request(op, service=_zero_target(cmd))
    if op in (b.OP_ADD_DEST, b.OP_EDIT_DEST, b.OP_DEL_DEST):
        return b.Request(op, service=cmd.service_key(), dest=cmd.destination())
    if op == b.OP_SET_TIMEOUTS:
        return b.Request(op, timeouts=cmd.timeouts)
    if op in (b.OP_START_DAEMON, b.OP_STOP_DAEMON):
        return b.Request(op, daemon=cmd.daemon())
    return b.Request(op)


def execute(cmd: Command, backend: b.Backend, as_json: bool = False, pretty: bool = False) -> Outcome:
    """Run one command; kernel errors become ipvsadm's messages and statuses.
    ``as_json``: a list command's answer as a JSON document (``pretty``:
    indented), with the exit status and message of the text."""
    if is_change(cmd):
        req = to_request(cmd)
        try:
            backend.apply(req)
        except b.KernelError as e:
            extra = loopback_hint(req, e.errno, backend)
            return Outcome(EXIT_KERNEL, "", kernel_message(req.op, e.errno) + "\n"
                           + (extra + "\n" if extra else ""))
        return Outcome()
    if cmd.name not in ("list", "save"):
        raise ValueError(f"not a table command: {cmd.name}")
    result = listing.read(backend, listing.Query.of(cmd, as_json))
    err = result.message + "\n" if result.message else ""
    if as_json:
        return Outcome(result.status, _json(result, pretty) if result.ok else "", err)
    return Outcome(result.status, _text(result, cmd.fmt), err)


def _text(result: listing.Listing, fmt) -> str | Iterator[str]:
    """What a list command prints: the header line if it was read (also
    before a table that then failed, as ipvsadm), then what was read."""
    kind, value = result.query.kind, result.value
    head = text.header(result.info) if result.info is not None else ""
    if not result.ok:
        return head
    if kind == listing.CONNECTIONS:
        from ipvsctl.render.connections import render_connections

        return render_connections(value, fmt)
    if kind == listing.TIMEOUTS:
        return text.timeouts(value)
    if kind == listing.DAEMONS:
        return text.daemons(value)
    return _table_text(head + text.title(fmt), value, fmt)


def _table_text(head: str, table, fmt) -> Iterator[str]:
    # Rendered while it is written: a big table's text is never whole in memory.
    yield head
    for svc, dests in table:
        yield from text.service_text(svc, dests, fmt)


def _json(result: listing.Listing, pretty: bool) -> str:
    from ipvsctl.render import json

    kind, value = result.query.kind, result.value
    if kind == listing.CONNECTIONS:
        doc = json.connections_doc(value)
    elif kind == listing.TIMEOUTS:
        doc = json.timeouts_doc(value)
    elif kind == listing.DAEMONS:
        doc = json.daemons_doc(value)
    else:
        doc = json.table_doc(result.info, value)
    return json.dumps(doc, pretty)
