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
        ``counters=False`` the destinations' stats may be left out (None)."""

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

    def close(self) -> None: ...


__all__ = [
    "Backend",
    "KernelError",
    "Request",
]
