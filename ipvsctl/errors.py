"""Kernel errors in ipvsadm's words.

Strategy: ipvsadm turns (operation, errno) into a fixed sentence (libipvs's
``ipvs_strerror``); scripts match on those sentences, so the table is kept as
data, keyed by the operation names of ``ipvsctl.backend``.  Anything not in
the table falls back to the generic errno sentences, then to strerror().
"""

from __future__ import annotations

import errno as E
import os

from ipvsctl import backend as b

TABLE_KEPT_CHANGING = ("The IPVS table kept changing while it was read: "
                       "no consistent listing could be made; try again")

# (operation, errno) -> message; operation None matches any operation.
_MESSAGES = {
    (b.OP_ADD_SERVICE, E.EEXIST): "Service already exists",
    (b.OP_ADD_SERVICE, E.ENOENT): "Scheduler or persistence engine not found",
    (b.OP_EDIT_SERVICE, E.ESRCH): "No such service",
    (b.OP_EDIT_SERVICE, E.ENOENT): "Scheduler or persistence engine not found",
    (b.OP_DEL_SERVICE, E.ESRCH): "No such service",
    (b.OP_ZERO, E.ESRCH): "No such service",
    (b.OP_ADD_DEST, E.ESRCH): "Service not defined",
    (b.OP_ADD_DEST, E.EEXIST): "Destination already exists",
    (b.OP_EDIT_DEST, E.ESRCH): "Service not defined",
    (b.OP_EDIT_DEST, E.ENOENT): "No such destination",
    (b.OP_DEL_DEST, E.ESRCH): "Service not defined",
    (b.OP_DEL_DEST, E.ENOENT): "No such destination",
    (b.OP_START_DAEMON, E.EEXIST): "Daemon has already run",
    (b.OP_STOP_DAEMON, E.ESRCH): "No daemon is running",
    (b.OP_GET_SERVICES, E.ESRCH): "No such service",
    (b.OP_GET_DESTS, E.ESRCH): "No such service",
    (b.OP_GET_SERVICE, E.ESRCH): "No such service",
    # ipvsctl's own: a list that changed during every attempt to read it
    # (netlink.backend.InconsistentRead); ipvsadm would print a torn table.
    (b.OP_GET_SERVICES, E.EAGAIN): TABLE_KEPT_CHANGING,
    (b.OP_GET_DESTS, E.EAGAIN): TABLE_KEPT_CHANGING,
    (b.OP_GET_DAEMONS, E.EAGAIN): TABLE_KEPT_CHANGING,
    # ipvsctl's own: faults of the netlink conversation (netlink.transport).
    (None, E.ENOBUFS): ("Replies from the kernel were lost (netlink receive buffer overrun): "
                        "whether a change took effect is unknown; read the table back"),
    (None, E.ETIMEDOUT): ("The kernel did not answer in time (IPVSCTL_NETLINK_TIMEOUT, "
                          "default 30 seconds)"),
    (None, E.EPROTO): "The kernel's netlink reply was malformed",
    (None, E.EPERM): "Permission denied (you must be root)",
    (None, E.EINVAL): "Invalid operation.  Possibly wrong module version, address not unicast, ...",
    (None, E.ENOPROTOOPT): "Protocol not available",
    (None, E.ENOMEM): "Memory allocation problem",
    (None, E.EOPNOTSUPP): "Operation not supported with IPv6",
    (None, E.EAFNOSUPPORT): "Operation not supported with specified address family",
    (None, E.EMSGSIZE): "Module is wrong version",
}

IPVS_UNAVAILABLE = (
    "Can't initialize ipvs: {reason}\n"
    "Are you sure that IP Virtual Server is built in the kernel or as module?"
)


def ipvs_unavailable(err: int) -> str:
    """ipvsadm's two lines for an IPVS it cannot reach (no module, no rights)."""
    return IPVS_UNAVAILABLE.format(reason=kernel_message("get_info", err))


def kernel_message(op: str, err: int) -> str:
    """ipvsadm's sentence for errno ``err`` raised by operation ``op``."""
    msg = _MESSAGES.get((op, err)) or _MESSAGES.get((None, err))
    return msg if msg is not None else os.strerror(err)


def netns_open_error(netns: str | None, exc: OSError) -> str:
    """What to say when the backend could not be opened in ``netns``."""
    if isinstance(exc, FileNotFoundError) and netns is not None:
        return (f"network namespace {netns!r} not found ({exc.filename or netns}); "
                "`ip netns list` shows the names")
    if isinstance(exc, PermissionError):
        where = f"network namespace {netns!r}" if netns else "IPVS"
        return f"cannot enter {where}: permission denied (you must be root)"
    if exc.errno == E.EINVAL and netns is not None and exc.strerror:
        # setns refused a file that is there: it is no network namespace
        # (str(exc) read "[Errno 22] cannot enter ...: Invalid argument: '/tmp'")
        return f"{exc.strerror} ({exc.filename or netns} is no network namespace file)"
    return str(exc)


LOOPBACK_DOWN = ("the loopback interface (lo) is down in this network namespace, and then the "
                 "kernel refuses IPv4 real servers: bring it up with `ip link set lo up`")


def loopback_hint(req, err: int, backend) -> str:
    """LOOPBACK_DOWN when the kernel's vague EINVAL for a real server comes
    from a loopback interface that is down (a fresh namespace), else ''.
    ``req``: the Request, or its operation's name."""
    op = req if isinstance(req, str) else req.op
    if err != E.EINVAL or op not in (b.OP_ADD_DEST, b.OP_EDIT_DEST):
        return ""
    return LOOPBACK_DOWN if loopback_is_down(getattr(backend, "netns", None)) else ""


def loopback_is_down(netns: str | None) -> bool:
    """Whether ``lo`` is down in ``netns`` (None: this thread's namespace).
    False when that cannot be told."""
    import fcntl
    import socket
    import struct

    SIOCGIFFLAGS, IFF_UP = 0x8913, 0x1

    def down() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            reply = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0))
        return not struct.unpack_from("16sH", reply)[1] & IFF_UP

    try:
        if netns is not None:
            from ipvsctl.netlink.netns import in_netns

            return in_netns(netns, down)
        return down()
    except OSError:
        return False
