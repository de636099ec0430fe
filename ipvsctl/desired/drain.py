"""Draining real servers: weight 0, then wait until no connection is left.

Strategy: a small state machine per real server, driven by one polling loop
for all of them at once (one destination dump per service per tick, however
many of its servers drain):

    waiting --(no connections left)------------> drained
            --(deadline)------------------------> timed out
            --(gone from the table)-------------> gone
            --(weight no longer 0: someone else)-> reweighted
            --(SIGINT/SIGTERM)-------------------> interrupted

"No connections" counts what the kernel counts per real server: active
connections, inactive ones (closing, TIME_WAIT, UDP) and persistence
templates (persistent services).  What leaving the table then does to the
stragglers is up to the sysctls (ipvsctl.desired.sysctls).

What kube-proxy's graceful termination taught: it looked once a minute,
counted neither templates nor a deadline per drain, and gave up on UDP
because UDP entries never go inactive under load.  Here the poll is fast
(1 s by default), the deadline is the user's, and what is left at the
deadline is named with its counts.
"""

from __future__ import annotations

import errno as _errno
import time

from ipvsctl import model as m
from ipvsctl.labels import server_label, service_label

WAITING = "waiting"
DRAINED = "drained"
TIMED_OUT = "timed out"
GONE = "gone"
REWEIGHTED = "reweighted"
INTERRUPTED = "interrupted"


class ServerDrain:
    """One real server being drained."""

    def __init__(self, key: m.ServiceKey, dest: m.Destination):
        self.key = key
        self.dest = dest
        self.state = WAITING
        self.active = dest.active_conns
        self.inactive = dest.inact_conns
        self.persistent = dest.persist_conns
        self.seconds: float | None = None

    @property
    def ident(self) -> tuple:
        return (self.dest.af, self.dest.addr, self.dest.port)

    @property
    def connections(self) -> int:
        return self.active + self.inactive + self.persistent

    @property
    def label(self) -> str:
        return f"{server_label(self.dest)} of {service_label(self.key)}"

    def counts_text(self) -> str:
        return (f"{self.connections} connection{'' if self.connections == 1 else 's'} "
                f"({self.active} active, {self.inactive} inactive, {self.persistent} persistence "
                f"template{'' if self.persistent == 1 else 's'})")

    def doc(self) -> dict:
        from ipvsctl.desired.render import server_identity, service_identity

        return {"service": service_identity(self.key), "server": server_identity(self.dest),
                "state": self.state, "seconds": None if self.seconds is None else round(self.seconds, 1),
                "connections": {"active": self.active, "inactive": self.inactive,
                                "persistent": self.persistent}}


def poll(backend, drains: list[ServerDrain]) -> None:
    """Read the counters of every waiting drain: one dump per service."""
    from ipvsctl.backend import KernelError

    by_key: dict[m.ServiceKey, list[ServerDrain]] = {}
    for dr in drains:
        if dr.state == WAITING:
            by_key.setdefault(dr.key, []).append(dr)
    for key, group in by_key.items():
        try:
            live = {(d.af, d.addr, d.port): d for d in backend.destinations(key)}
        except KernelError as e:
            if e.errno != _errno.ESRCH:
                raise
            live = {}
        for dr in group:
            d = live.get(dr.ident)
            if d is None:
                dr.state = GONE
                continue
            dr.active, dr.inactive, dr.persistent = d.active_conns, d.inact_conns, d.persist_conns
            if d.weight != 0:
                dr.state = REWEIGHTED


def wait(backend, drains: list[ServerDrain], timeout: float, interval: float = 1.0,
         stop=lambda: False, progress=None, clock=time.monotonic, sleep=time.sleep) -> None:
    """Poll until every drain has left ``waiting``; at ``timeout`` seconds
    the rest are ``timed out``, when ``stop()`` is true ``interrupted``.
    ``progress(drains, seconds_left)`` is called after every poll."""
    start = clock()
    deadline = start + timeout
    while True:
        poll(backend, drains)
        now = clock()
        for dr in drains:
            if dr.state == WAITING and dr.connections == 0:
                dr.state = DRAINED
            if dr.state != WAITING and dr.seconds is None:
                dr.seconds = now - start
        waiting = [dr for dr in drains if dr.state == WAITING]
        if progress is not None:
            progress(drains, max(0.0, deadline - now))
        if not waiting:
            return
        final = None
        if stop():
            final = INTERRUPTED
        elif now >= deadline:
            final = TIMED_OUT
        if final is not None:
            for dr in waiting:
                dr.state = final
                dr.seconds = now - start
            return
        # Sleep in small slices so that a signal ends the wait at once.
        until = min(now + interval, deadline)
        while not stop():
            left = until - clock()
            if left <= 0:
                break
            sleep(min(left, 0.1))


class Progress:
    """Drain progress for people: one line rewritten in place on a terminal,
    otherwise a plain line whenever the count changes (and every 10 s)."""

    def __init__(self, stream, tty: bool | None = None):
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.last_text = None
        self.last_time = 0.0
        self.open_line = False

    def __call__(self, drains: list[ServerDrain], seconds_left: float) -> None:
        waiting = [dr for dr in drains if dr.state == "waiting"]
        if not waiting:
            self.finish()
            return
        if len(drains) == 1:
            text = f"draining {waiting[0].label}: {waiting[0].counts_text()} left"
        else:
            total = sum(dr.connections for dr in waiting)
            verb = "has" if len(waiting) == 1 else "have"
            text = (f"draining {len(drains)} real servers: {len(waiting)} still {verb} connections "
                    f"({total} in all)")
        now = time.monotonic()
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}, {seconds_left:.0f} s left")
            self.open_line = True
        elif text != self.last_text or now - self.last_time >= 10:
            self.stream.write(f"{text}, {seconds_left:.0f} s left\n")
            self.last_time = now
        self.last_text = text
        self.stream.flush()

    def finish(self) -> None:
        if self.open_line:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.open_line = False
