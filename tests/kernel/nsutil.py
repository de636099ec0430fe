"""Network namespaces for the kernel test tier: one fresh IPVS table per use.

IPVS tables are per network namespace, so every kernel test works inside
namespaces it created and deleted afterwards, never in the root namespace.

Speed matters: inside User-Mode Linux every process spawn costs tens of
milliseconds.  Measured there (python subprocess.run of `true`):
    plain spawn                                 ~17 ms
    ip netns exec NAME true                     ~39 ms
    nsenter --net=/run/netns/NAME true          ~40 ms
    preexec_fn=setns (forces fork, not vfork)   ~75 ms
so ``NetNS.run`` instead moves the calling thread into the namespace with
setns(2), spawns (the child inherits the thread's namespace), and moves back.
It uses ipvsctl's own setns (ipvsctl.netlink.netns).
"""

from __future__ import annotations

import fcntl
import itertools
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from ipvsctl.netlink.netns import entered

NETNS_DIR = Path("/run/netns")
DEFAULT_TIMEOUT = 60  # seconds; any single command taking longer is a hang

_counter = itertools.count(1)


def ipvs_available() -> bool:
    return os.path.exists("/proc/net/ip_vs")


def _ip_batch(lines: Sequence[str]) -> None:
    """Run several `ip` commands in one process (one spawn, not one per line)."""
    r = subprocess.run(
        ["ip", "-batch", "-"],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=DEFAULT_TIMEOUT,
    )
    if r.returncode != 0:
        raise RuntimeError(f"ip -batch failed ({r.returncode}): {r.stderr.strip()}\n{lines}")


def unique_name(role: str = "t") -> str:
    # The pid keeps concurrent test runs on one kernel apart.
    return f"ipvst{os.getpid()}-{next(_counter)}-{role}"


class NetNS:
    """A named network namespace (/run/netns/NAME), created by ``create``."""

    def __init__(self, name: str):
        self.name = name
        self.path = str(NETNS_DIR / name)

    def __repr__(self) -> str:
        return f"NetNS({self.name!r})"

    # --- life cycle -------------------------------------------------------

    @classmethod
    def create_many(cls, roles: Sequence[str]) -> list["NetNS"]:
        """Create fresh namespaces (one ``ip`` process for all), loopback up."""
        spaces = [cls(unique_name(role)) for role in roles]
        try:
            _ip_batch([f"netns add {ns.name}" for ns in spaces])
            for ns in spaces:
                ns.set_link_up("lo")
        except BaseException:
            delete_many(spaces)
            raise
        return spaces

    @classmethod
    def create(cls, role: str = "t") -> "NetNS":
        return cls.create_many([role])[0]

    def delete(self) -> None:
        delete_many([self])

    def inode(self) -> int:
        return os.stat(self.path).st_ino

    def kill_processes(self) -> None:
        """SIGKILL whatever still runs inside (a left-over process would keep
        the namespace, and its IPVS table, alive after ``ip netns del``)."""
        try:
            target = f"net:[{self.inode()}]"
        except FileNotFoundError:
            return
        me = os.getpid()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                if os.readlink(f"/proc/{entry.name}/ns/net") == target:
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass  # gone already, or a kernel thread

    # --- running things inside --------------------------------------------

    @contextmanager
    def enter(self) -> Iterator["NetNS"]:
        """Move the current thread into this namespace, and back afterwards.

        Sockets opened meanwhile (netlink included) belong to this namespace
        and stay there; child processes started meanwhile are born in it.
        Only the calling thread moves: other threads are unaffected.
        """
        with entered(self.path):  # ipvsctl's own setns (ipvsctl.netlink.netns)
            yield self

    def run(
        self,
        argv: Sequence[str],
        input: str | None = None,
        check: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        **kwargs,
    ) -> subprocess.CompletedProcess:
        """Run argv inside the namespace; text mode, output captured."""
        with self.enter():
            return subprocess.run(
                list(argv),
                input=input,
                capture_output=True,
                text=True,
                check=check,
                timeout=timeout,
                **kwargs,
            )

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start a background process inside the namespace."""
        with self.enter():
            return subprocess.Popen(list(argv), **kwargs)

    def ip(self, *lines: str) -> None:
        """Run `ip` commands (one per argument) inside the namespace."""
        with self.enter():
            _ip_batch(lines)

    def sysctl(self, key: str, value: str | int) -> None:
        # /proc/sys/net follows the namespace of the thread that opens it.
        with self.enter():
            Path("/proc/sys", key.replace(".", "/")).write_text(f"{value}\n")

    def set_link_up(self, ifname: str) -> None:
        """ifconfig IFNAME up, in-process (saves a 40 ms `ip` spawn under UML)."""
        SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
        name = ifname.encode()
        with self.enter(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            # struct ifreq: 16-byte name, then a 24-byte union (flags first).
            got = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH22x", name, 0))
            flags = struct.unpack_from("16sH", got)[1]
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", name, flags | IFF_UP))


def delete_many(spaces: Sequence[NetNS]) -> None:
    for ns in spaces:
        ns.kill_processes()
    present = [ns for ns in spaces if os.path.exists(ns.path)]
    if present:
        _ip_batch([f"netns del {ns.name}" for ns in present])


# --- the two tools under comparison ------------------------------------------


def run_ipvsadm(ns: NetNS, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """The real ipvsadm (the oracle), inside ``ns``.  Bytes that are not
    UTF-8 (a word given as such, echoed in a message) come back as
    surrogates, as ipvsctl holds them."""
    return ns.run(["ipvsadm", *args], input=input, errors="surrogateescape")


def run_ipvsctl(ns: NetNS, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """This project's CLI (`python -m ipvsctl`), inside ``ns``."""
    return ns.run([sys.executable, "-m", "ipvsctl", *args], input=input, errors="surrogateescape")


# --- the root namespace must stay untouched ----------------------------------


def root_ipvs_table() -> list[str]:
    """Services and destinations in the root namespace's IPVS table.

    Read through PID 1, which lives in the root namespace, so the answer is
    right even if this thread were (by a bug) inside another namespace.
    """
    lines = Path("/proc/1/net/ip_vs").read_text().splitlines()
    return lines[3:]  # after the three header lines


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
