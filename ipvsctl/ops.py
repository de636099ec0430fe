"""What each ipvsadm command means, as functions over a Backend.

Strategy: ``execute`` takes a parsed ``Command`` and a backend and returns
(exit status, stdout text, stderr text) without printing, so the command line
and the restore stream share one implementation and tests can call it
in-process.  Changes become ``Request`` values (``to_request``), which is what
lets a restore batch thousands of them into a few system calls.
"""

from __future__ import annotations

from ipvsctl import backend as b
from ipvsctl import model as m
from ipvsctl.errors import kernel_message, loopback_hint
from ipvsctl.vocab import EXIT_KERNEL, EXIT_OK, EXIT_READ_FAILED
from ipvsctl.grammar import Command
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


def execute(cmd: Command, backend: b.Backend) -> Outcome:
    """Run one command; kernel errors become ipvsadm's messages and statuses."""
    if is_change(cmd):
        req = to_request(cmd)
        try:
            backend.apply(req)
        except b.KernelError as e:
            extra = loopback_hint(req, e.errno, backend)
            return Outcome(EXIT_KERNEL, "", kernel_message(req.op, e.errno) + "\n"
                           + (extra + "\n" if extra else ""))
        return Outcome()
    if cmd.name == "save":
        return list_all(backend, cmd.fmt, with_header=False)
    if cmd.name == "list":
        return list_command(cmd, backend)
    raise ValueError(f"not a table command: {cmd.name}")


def list_command(cmd: Command, backend: b.Backend) -> Outcome:
    o = cmd.options
    if "connection" in o:
        return list_connections(backend, cmd.fmt)
    if "service-address" in o:
        return list_service(backend, cmd.service_key(), cmd.fmt)
    if "timeout" in o:
        try:
            return Outcome(out=text.timeouts(backend.timeouts()))
        except b.KernelError:
            return Outcome(EXIT_READ_FAILED)
    if "daemon" in o:
        try:
            return Outcome(out=text.daemons(backend.daemons()))
        except b.KernelError:
            return Outcome(EXIT_READ_FAILED)
    return list_all(backend, cmd.fmt, with_header=True)


def list_all(backend: b.Backend, fmt, with_header: bool) -> Outcome:
    from ipvsctl.order import sort_services

    head = ""
    if with_header:
        try:
            head = text.header(backend.info())
        except b.KernelError as e:
            return Outcome(EXIT_READ_FAILED, "", kernel_message(b.OP_GET_INFO, e.errno) + "\n")
    try:
        # Counters are read only for the formats that print them.
        table = backend.table(counters=fmt.stats or fmt.rate)
    except b.KernelError as e:
        return Outcome(EXIT_READ_FAILED, head, kernel_message(e.op or b.OP_GET_SERVICES, e.errno) + "\n")
    if not fmt.nosort:
        table = sort_services(table, service_of=lambda entry: entry[0])
    return Outcome(out=_table_text(head + text.title(fmt), table, fmt))


def _table_text(head: str, table, fmt) -> Iterator[str]:
    # Rendered while it is written: a big table's text is never whole in memory.
    yield head
    for svc, dests in table:
        yield from text.service_text(svc, dests, fmt)


def list_service(backend: b.Backend, key: m.ServiceKey, fmt) -> Outcome:
    try:
        svc = backend.service(key)
        dests = backend.destinations(key)
    except b.KernelError as e:
        return Outcome(EXIT_READ_FAILED, "", kernel_message(b.OP_GET_SERVICE, e.errno) + "\n")
    return Outcome(out=text.title(fmt) + "".join(text.service_text(svc, dests, fmt)))


CONN_FILE = "/proc/net/ip_vs_conn"


def read_connections(backend: b.Backend) -> tuple[str | None, Outcome | None]:
    """The raw connection table of the backend's namespace, or the failure
    ipvsadm reports when it cannot read it."""
    try:
        return backend.read_proc_net("ip_vs_conn"), None
    except OSError:
        return None, Outcome(EXIT_READ_FAILED, "", f"cannot open file {CONN_FILE}\n")


def list_connections(backend: b.Backend, fmt) -> Outcome:
    from ipvsctl.render.connections import render_connections

    raw, failed = read_connections(backend)
    return failed or Outcome(out=render_connections(raw, fmt))
