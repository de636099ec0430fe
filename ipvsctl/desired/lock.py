"""One apply at a time per network namespace: a file lock under /run.

Strategy: ``flock`` on ``/run/ipvsctl/net-<inode>.lock``, where the inode is
the network namespace's own (the same for ``--netns NAME`` and for a process
already inside it), so two applies on one table never interleave their
snapshots and batches, whatever name each used.  The kernel drops the lock
when the holder exits, however it exits: no stale locks.  The holder writes
its pid into the file so that a waiting apply can say whom it waits for.
Waiting polls (not a blocking flock) so that a signal can end the wait.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager

from ipvsctl.netlink.netns import netns_path

LOCK_DIR = "/run/ipvsctl"
POLL = 0.05


class LockError(OSError):
    pass


def namespace_inode(netns: str | None) -> int:
    path = netns_path(netns) if netns is not None else "/proc/thread-self/ns/net"
    return os.stat(path).st_ino


def lock_path(netns: str | None, lock_dir: str | None = None) -> str:
    return os.path.join(lock_dir or os.environ.get("IPVSCTL_LOCK_DIR", LOCK_DIR),
                        f"net-{namespace_inode(netns)}.lock")


@contextmanager
def netns_lock(netns: str | None, on_wait=None, interrupted=lambda: False, lock_dir: str | None = None):
    """Hold the apply lock of ``netns``'s table.  ``on_wait(pid_text)`` is
    called once if another process holds it; the wait ends early (LockError)
    when ``interrupted()`` becomes true."""
    path = lock_path(netns, lock_dir)
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise LockError(e.errno, f"cannot open the apply lock {path}: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(_holder(fd))
            while True:
                if interrupted():
                    raise LockError(0, "interrupted while waiting for the apply lock") from None
                time.sleep(POLL)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip() or "?"
    except OSError:
        return "?"
