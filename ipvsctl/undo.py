"""Put a table back as it was: the safety net of ``restore --flush``.

Strategy: before a restore that clears the table sends anything, read the
whole table (``Backend.table``, one consistent read of every service with
its real servers and all their settings) and, when the restore changes
them, the connection timeouts.  If any part of the restore then fails,
``put_back`` clears the table again and re-creates what the snapshot holds,
in one pipelined batch: a restore with ``--flush`` is all or nothing.

What a snapshot cannot bring back: counters and rate estimates start from
zero for re-created services, and sync daemons started or stopped by the
restore stay as they are.  A table changed by someone else between the
snapshot and the undo is overwritten by the snapshot.
"""

from __future__ import annotations

from ipvsctl import backend as b


class Snapshot:
    __slots__ = ("table", "timeouts")

    def __init__(self, table, timeouts=None):
        self.table = table  # [(Service, [Destination])]
        self.timeouts = timeouts  # Timeouts, or None when the restore leaves them

    @property
    def size(self) -> tuple[int, int]:
        return len(self.table), sum(len(d) for _, d in self.table)


def take(backend, with_timeouts: bool = False) -> Snapshot:
    """Read what a restore may change; KernelError if the table cannot be read."""
    table = [(svc, list(dests)) for svc, dests in backend.table(counters=False)]
    return Snapshot(table, backend.timeouts() if with_timeouts else None)


def requests(snap: Snapshot) -> list[b.Request]:
    """Clear the table, then re-create every service and real server."""
    reqs = [b.Request(b.OP_FLUSH)]
    for svc, dests in snap.table:
        reqs.append(b.Request(b.OP_ADD_SERVICE, service=svc))
        reqs.extend(b.Request(b.OP_ADD_DEST, service=svc.key, dest=d) for d in dests)
    if snap.timeouts is not None:
        reqs.append(b.Request(b.OP_SET_TIMEOUTS, timeouts=snap.timeouts))
    return reqs


def put_back(backend, snap: Snapshot) -> list[str]:
    """Restore the snapshot (sending.send, as the restore itself); return
    what could not be restored (empty: all was)."""
    from ipvsctl import sending
    from ipvsctl.errors import kernel_message

    reqs = requests(snap)
    sent = sending.send(backend, [(None, req) for req in reqs])
    problems = [f"{sending.describe(reqs[r.index])}: {r.message}" for r in sent.refusals]
    e = sent.broken
    if e is not None:
        problems.append(f"the undo broke off ({kernel_message(e.op, e.errno)}) after {e.done} of "
                        f"its {len(reqs)} requests: the rest may be missing (read the table back)")
    return problems
