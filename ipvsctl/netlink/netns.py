"""Moving the current thread into a network namespace, and back: the one
setns of ipvsctl (and of its tests and benchmarks).

Strategy: a socket, or a /proc/thread-self/net file, belongs to the network
namespace of the thread that opened it, for good.  So entering a namespace
for a while, opening what is needed and coming back is all ``--netns``
takes, and it moves only the calling thread.  Python 3.11 has no
``os.setns``: libc's is called through ctypes, imported only here and only
when a namespace is entered (ordinary commands never pay for it).
"""

from __future__ import annotations

import errno as _errno
import os

from ipvsctl.netlink.constants import CLONE_NEWNET

NETNS_DIR = "/run/netns"  # where `ip netns add NAME` keeps its namespaces


class NetnsNotFound(FileNotFoundError):
    """The named network namespace does not exist."""

    def __init__(self, name: str, path: str):
        super().__init__(_errno.ENOENT, f"network namespace {name!r} not found", path)
        self.name = name


def netns_path(netns: str) -> str:
    """A namespace name (``ip netns add NAME``) or a path to a namespace file."""
    return netns if "/" in netns else os.path.join(NETNS_DIR, netns)


def setns(fd: int) -> None:
    """Move this thread into the network namespace of ``fd``; OSError(errno)."""
    import ctypes  # only on this path: keeps ordinary commands light

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def enter(path: str) -> None:
    """Move this thread into the namespace of file ``path`` (for good)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd)
    finally:
        os.close(fd)


def _own() -> int:
    try:
        return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:  # kernels before 3.17
        return os.open(f"/proc/self/task/{os.gettid()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)


class entered:
    """``with entered(path):`` this thread inside the namespace of file
    ``path`` for the block, back in its own afterwards."""

    __slots__ = ("path", "_own")

    def __init__(self, path: str):
        self.path = path

    def __enter__(self) -> entered:
        self._own = _own()
        try:
            enter(self.path)
        except BaseException:
            os.close(self._own)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            setns(self._own)
        except OSError as e:  # pragma: no cover - the namespace it came from is held open
            raise RuntimeError(f"cannot return to the original network namespace: {e.strerror}") from None
        finally:
            os.close(self._own)


def in_netns(netns: str, action):
    """Run ``action()`` with this thread inside ``netns`` (a name or a path),
    then move back.  What ``action`` opens stays bound to that namespace.
    NetnsNotFound when there is no such namespace."""
    path = netns_path(netns)
    if not netns:  # --netns= : /run/netns itself is no namespace (and never "this one")
        raise NetnsNotFound(netns, path)
    try:
        context = entered(path)
        context.__enter__()
    except FileNotFoundError:
        raise NetnsNotFound(netns, path) from None
    except OSError as e:
        if e.filename is not None:  # opening the file failed (e.g. no rights)
            raise
        raise OSError(e.errno, f"cannot enter network namespace {netns!r}: {e.strerror}", path) from None
    try:
        return action()
    finally:
        context.__exit__(None, None, None)
