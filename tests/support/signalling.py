"""A fake IPVS behind the netlink socket that sends this process a signal
at a chosen moment of a restore, and the restore streams the tests send
through it (tests/unit/test_restore_plan.py, tests/unit/commands/
test_restore_command.py; the kernel tier does the same for real in
tests/kernel/test_restore_signals.py)."""

from __future__ import annotations

import os
import signal

from ipvsctl.netlink import constants as C
from ipvsctl.netlink import wire
from support.fake_ipvs import KernelSocket, Table, backend_over

N = 3000  # services: with the fake's buffers a window holds 512 requests


def lines(n: int = N) -> list[str]:
    return [f"-A -t 10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}:80 -s rr" for i in range(n)]


def services(table: Table) -> set[str]:
    return {f"-A -t {s.key.addr}:{s.key.port} -s {s.scheduler}" for s in table.services}


def is_change(raw: bytes) -> bool:
    """Whether a send holds a change request (an add or a flush)."""
    return any(t >= C.NLMSG_MIN_TYPE and p[0] in (C.IPVS_CMD_NEW_SERVICE, C.IPVS_CMD_NEW_DEST,
                                                  C.IPVS_CMD_FLUSH)
               and not f & C.NLM_F_DUMP for t, f, _s, p in wire.iter_messages(raw))


class Signalling(KernelSocket):
    """Sends ``signum`` to this process while it receives its ``at``-th
    window of changes (counted from 1), once the window is handled."""

    at = 0
    signum = signal.SIGTERM
    windows = 0

    def send(self, buf) -> int:
        n = KernelSocket.send(self, buf)
        if is_change(bytes(buf)):
            self.windows += 1
            if self.windows == self.at:
                os.kill(os.getpid(), self.signum)
        return n


def over(table: Table, at: int, signum: int):
    """A backend over ``table`` whose 'kernel' signals at window ``at``."""
    backend, sock, _ = backend_over(table)
    sig = Signalling(table)
    sig.at, sig.signum = at, signum
    backend._t.sock = sig
    return backend, sig
