"""The one interface between what a command means and the kernel.

Strategy: every operation ipvsctl performs on IPVS is a method of ``Backend``.
The netlink backend (``ipvsctl.netlink.backend.NetlinkBackend``) is the only
implementation that opens a socket; tests of the layers above may use a fake.
Kernel failures are raised as ``KernelError`` carrying the errno, and the
layer above maps (operation, errno) to ipvsadm's message.
"""

from __future__ import annotations

from ipvsctl.model import Daemon, Destination, Info, Service, ServiceKey, Timeouts, immutable

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: collections.abc imports collections (start-up time)
    from collections.abc import Iterable, Sequence


class KernelError(Exception):
    """The kernel refused a request: ``errno`` is the positive errno value."""

    def __init__(self, errno: int, op: str = ""):
        super().__init__(errno, op)
        self.errno = errno
        self.op = op

    def __str__(self) -> str:
        import os

        return f"{self.op}: {os.strerror(self.errno)}" if self.op else os.strerror(self.errno)


class BatchBroken(KernelError):
    """A pipelined send broke off with ``cause`` (a KernelError: no answer
    in time, a refused send): requests ``[start, done)`` have their
    outcome in ``errors`` ({index: errno}), those in ``[done, unknown)`` were
    sent but may or may not have been applied, the rest were not sent."""

    def __init__(self, cause: KernelError, done: int, unknown: int, errors: dict[int, int]):
        super().__init__(cause.errno, cause.op)
        self.cause = cause
        self.done = done
        self.unknown = unknown
        self.errors = errors


# Operation names, shared by Request.op, KernelError.op and the message table.
OP_ADD_SERVICE = "add_service"
OP_EDIT_SERVICE = "edit_service"
OP_DEL_SERVICE = "del_service"
OP_ZERO = "zero"
OP_FLUSH = "flush"
OP_ADD_DEST = "add_dest"
OP_EDIT_DEST = "edit_dest"
OP_DEL_DEST = "del_dest"
OP_SET_TIMEOUTS = "set_timeouts"
OP_START_DAEMON = "start_daemon"
OP_STOP_DAEMON = "stop_daemon"
OP_GET_SERVICES = "get_services"
OP_GET_SERVICE = "get_service"
OP_GET_DESTS = "get_dests"
OP_GET_INFO = "get_info"
OP_GET_TIMEOUTS = "get_timeouts"
OP_GET_DAEMONS = "get_daemons"


@immutable
class Request:
    """One change to apply, for batched submission.

    ``op`` is one of the OP_* change operations above; ``service`` is the
    Service (add/edit service) or the ServiceKey (delete/zero service, and the
    parent of any destination operation; None for zero-all/flush);
    ``dest`` the Destination for destination operations; ``timeouts`` or
    ``daemon`` for those operations.
    """

    __slots__ = ("op", "service", "dest", "timeouts", "daemon")

    def __new__(cls, op: str, service: Service | ServiceKey | None = None,
                 dest: Destination | None = None, timeouts: Timeouts | None = None,
                 daemon: Daemon | None = None):
        self = cls._blank()
        self.op = op
        self.service = service
        self.dest = dest
        self.timeouts = timeouts
        self.daemon = daemon
        self.__class__ = cls
        return self


#: Requests per apply_many call when a Batch sends through it: the
#: transport's window, so that a signal is noticed at least that often.
BATCH_CHUNK = 2048


class Batch:
    """Change requests held to be sent later in order, pipelined, with a
    way to stop between two windows (what ``-R`` and ``restore`` hold
    between checking their input and sending it).

    This default keeps Request values and sends them through
    ``apply_many`` a chunk at a time; a backend may hold them more
    compactly (``Backend.batch()``: NetlinkBackend encodes them at once,
    back to back in one buffer, ~160 bytes a real server).
    """

    def __init__(self, backend=None):
        self.backend = backend
        self.requests: list[Request] = []

    def add(self, request: Request) -> None:
        self.requests.append(request)

    def __len__(self) -> int:
        return len(self.requests)

    def send(self, start: int, stop: int, should_stop=None) -> tuple[dict[int, int], int]:
        """Send requests [start, stop); ({index: errno} of the failures,
        the index of the first request not sent).  ``should_stop()`` is
        asked before each window: once it is true nothing more is sent.
        A fault of the conversation raises BatchBroken."""
        errors: dict[int, int] = {}
        i = start
        while i < stop:
            if should_stop is not None and should_stop():
                return errors, i
            j = min(stop, i + BATCH_CHUNK)
            try:
                failed = self.backend.apply_many(self.requests[i:j])
            except BatchBroken as e:
                errors.update((i + k, err) for k, err in e.errors.items())
                raise BatchBroken(e.cause, i + e.done, i + e.unknown, errors) from None
            except KernelError as e:
                raise BatchBroken(e, i, j, errors) from None
            for k, e in failed.items():
                errors[i + k] = e.errno
            i = j
        return errors, stop


def batch_for(backend) -> Batch:
    """The backend's own Batch (``backend.batch()``), else the default."""
    make = getattr(backend, "batch", None)
    return make() if make is not None else Batch(backend)


class Backend:
    """What ipvsctl asks of a kernel backend.  Structural, like a
    typing.Protocol (implementations need not inherit from it), but a plain
    class: importing typing would cost start-up time on every command."""

    # --- reads -------------------------------------------------------------
    def info(self) -> Info: ...

    def services(self) -> list[Service]:
        """Every service, with stats, in kernel order."""

    def service(self, key: ServiceKey) -> Service:
        """One service with stats; KernelError(ESRCH) if absent."""

    def destinations(self, key: ServiceKey) -> list[Destination]:
        """The real servers of one service, with counters and stats."""

    def table(self, counters: bool = True) -> list[tuple[Service, Sequence[Destination]]]:
        """Every service with its destinations, read consistently.  With
        ``counters=False`` the stats of services and destinations may be
        left out (None)."""

    def timeouts(self) -> Timeouts: ...

    def daemons(self) -> list[Daemon]: ...

    def read_proc_net(self, name: str) -> str:
        """/proc/net/NAME as seen from the backend's network namespace
        (IPVS connections have no netlink dump)."""

    # --- single changes (raise KernelError) --------------------------------
    def apply(self, request: Request) -> None: ...

    # --- bulk changes ------------------------------------------------------
    def apply_many(self, requests: Iterable[Request]) -> dict[int, KernelError]:
        """Apply in order, pipelined; return {index: error} for the failures.

        Every request is attempted (a failure does not stop the ones after
        it), exactly as if each had been applied alone in the same order.
        """

    def batch(self) -> Batch:
        """Optional: a Batch that holds requests in this backend's own form
        (see ``batch_for``)."""

    def close(self) -> None: ...


__all__ = [
    "Backend",
    "Batch",
    "BatchBroken",
    "KernelError",
    "Request",
]
