"""Executing a plan: lock, snapshot, batch, undo in reverse, verify.

Strategy:

1. Take the namespace's apply lock (ipvsctl.desired.lock), so that two
   applies never interleave; everything below happens under it.
2. Read the live table: that is the snapshot, and the plan is made from it
   (never from a table read before the lock).
3. Send the plan's requests through ``Backend.apply_many`` (pipelined), in
   chunks of a window each, so that a signal is noticed between two chunks.
4. If the kernel refuses a step, stop sending and roll back: every step it
   accepted is undone, last first, by a request derived from the snapshot
   (an edit is undone by an edit back to the snapshot's value, an add by a
   delete, a delete by an add of the snapshot's value, a service deletion by
   adding it back with its real servers).  Nothing is remembered ad hoc.
   ``rollback=False`` sends everything and reports each refusal instead.
5. SIGINT and SIGTERM are caught for the whole run and roll back the same
   way; a real server that was draining stays at weight 0 and is named.
6. Read the table back and compare it with the desired one (plan() again,
   same scope): what differs is reported and the exit status says so.  After
   a rollback, the services touched are compared with the snapshot instead.

With ``drain=SECONDS`` the plan runs in two phases: everything except the
removals, plus weight 0 for every real server that leaves (also those of
services that leave); then all of them are drained at once
(ipvsctl.desired.drain); then the removals, drained or not.
"""

from __future__ import annotations

from contextlib import nullcontext

from ipvsctl import backend as b
from ipvsctl import listing
from ipvsctl import model as m
from ipvsctl.desired import drain as D
from ipvsctl.desired import plan as P
from ipvsctl.desired.lock import LockError, netns_lock
from ipvsctl.interrupt import Guard, signal_name
from ipvsctl.vocab import EXIT_DIFFERS, EXIT_KERNEL, EXIT_OK, EXIT_SIGNALLED

#: Requests per apply_many call: one transport window, so that a signal is
#: seen within one window's time (well under a second for 2048 requests).
CHUNK = b.BATCH_CHUNK



class Snapshot:
    """The live table as it was before anything was sent, indexed."""

    def __init__(self, table):
        self.services = {svc.key: svc for svc, _ in table}
        self.dests = {svc.key: {P.dest_ident(d): d for d in dests} for svc, dests in table}

    def undo(self, step: P.Step, keep_zero=frozenset()) -> list[b.Request]:
        """The requests that take ``step`` back to the snapshot.  Real
        servers in ``keep_zero`` ((key, ident) pairs) come back at weight 0."""
        key = step.key

        def dest_as_was(d: m.Destination) -> m.Destination:
            return d.replace(weight=0) if (key, P.dest_ident(d)) in keep_zero else d

        if step.op == P.ADD_SERVICE:
            return [b.Request(P.DEL_SERVICE, service=key)]
        if step.op == P.EDIT_SERVICE:
            return [b.Request(P.EDIT_SERVICE, service=self.services[key])]
        if step.op == P.DEL_SERVICE:
            return [b.Request(P.ADD_SERVICE, service=self.services[key])] + [
                b.Request(P.ADD_DEST, service=key, dest=dest_as_was(d)) for d in self.dests[key].values()]
        ident = P.dest_ident(step.dest)
        if step.op == P.ADD_DEST:
            return [b.Request(P.DEL_DEST, service=key, dest=step.dest)]
        was = dest_as_was(self.dests[key][ident])
        if step.op == P.EDIT_DEST:
            return [b.Request(P.EDIT_DEST, service=key, dest=was)]
        if step.op == P.DEL_DEST:
            return [b.Request(P.ADD_DEST, service=key, dest=was)]
        raise ValueError(f"no undo for {step.op}")

    def table(self, keys, keep_zero=frozenset()):
        """The snapshot's entries for ``keys`` (those it has)."""
        out = []
        for key in keys:
            if key in self.services:
                dests = [d.replace(weight=0) if (key, ident) in keep_zero else d
                         for ident, d in self.dests[key].items()]
                out.append((self.services[key], dests))
        return out


def request_step(req: b.Request) -> P.Step:
    """A Step for a Request (to show an undo request as a rule line)."""
    if req.op in (P.ADD_SERVICE, P.EDIT_SERVICE):
        return P.Step(req.op, req.service.key, service=req.service)
    return P.Step(req.op, req.service, dest=req.dest)


class Report:
    """What an apply did (the JSON report is ``doc()``)."""

    def __init__(self):
        self.plan: P.Plan | None = None
        self.applied: list[P.Step] = []
        self.failed: list[tuple[P.Step, str]] = []
        self.uncertain: list[P.Step] = []  # sent in a batch whose outcome is unknown
        self.rolled_back = False
        self.rollback_failed: list[tuple[P.Step, str]] = []
        self.rollback_problems: P.Plan | None = None
        self.rollback_leftovers: list[m.ServiceKey] = []
        self.drained: list[D.ServerDrain] = []
        self.left_at_zero: list[D.ServerDrain] = []
        self.interrupted: int | None = None
        self.verify_plan: P.Plan | None = None
        self.requests = 0  # change requests sent, rollback included
        self.sysctls: dict | None = None
        self.dry_run = False  # a plan only (apply --dry-run): nothing was sent

    @property
    def verified(self) -> bool:
        return self.verify_plan is not None and self.verify_plan.in_sync

    @property
    def rollback_complete(self) -> bool:
        return (self.rolled_back and not self.rollback_failed and not self.rollback_leftovers
                and (self.rollback_problems is None or self.rollback_problems.in_sync))

    @property
    def changed(self) -> bool:
        if not self.applied and not self.uncertain:
            return False
        return not self.rollback_complete or bool(self.left_at_zero)

    @property
    def status(self) -> int:
        if self.interrupted is not None:
            return EXIT_SIGNALLED + self.interrupted
        if self.failed:
            return EXIT_KERNEL
        if self.plan is not None and not self.plan.in_sync and not self.verified:
            return EXIT_DIFFERS
        return EXIT_OK

    def doc(self) -> dict:
        from ipvsctl.desired import render as R
        from ipvsctl.desired import sysctls as S

        def failure(step, message):
            return {**R.step_doc(step), "error": message}

        return {
            # for a dry run: whether the real run would change the table
            "changed": (self.plan is not None and not self.plan.in_sync) if self.dry_run else self.changed,
            "dry_run": self.dry_run,
            "plan": R.plan_doc(self.plan, S.doc(self.sysctls) if self.sysctls else None)
            if self.plan is not None else None,
            "applied": [R.step_doc(s) for s in self.applied],
            "failed": [failure(s, msg) for s, msg in self.failed],
            "rolled_back": self.rolled_back,
            "rollback_complete": self.rollback_complete if self.rolled_back else None,
            "rollback_failed": [failure(s, msg) for s, msg in self.rollback_failed],
            "drained": [dr.doc() for dr in self.drained],
            "left_at_weight_zero": [dr.doc() for dr in self.left_at_zero],
            "interrupted": signal_name(self.interrupted) if self.interrupted else None,
            "verified": self.verified if self.verify_plan is not None else None,
            "differences": R.plan_doc(self.verify_plan)
            if self.verify_plan is not None and not self.verify_plan.in_sync else None,
            "requests": self.requests,
        }


class Applier:
    def __init__(self, backend, report: Report, guard: Guard, rollback: bool, chunk: int):
        self.backend = backend
        self.report = report
        self.guard = guard
        self.rollback = rollback
        self.chunk = chunk

    def send(self, steps: list[P.Step]) -> bool:
        """Send ``steps`` in order, a chunk at a time; False when a step was
        refused (and rollback is on) or a signal came."""
        from ipvsctl.errors import kernel_message

        r = self.report
        for start in range(0, len(steps), self.chunk):
            if self.guard.interrupted():
                return False
            part = steps[start:start + self.chunk]
            try:
                errors = self.backend.apply_many([s.request() for s in part])
            except b.KernelError as e:
                r.requests += len(part)
                r.uncertain.extend(part)
                r.failed.append((part[0], "the batch failed and its outcome is unknown: "
                                 + kernel_message(e.op or part[0].op, e.errno)))
                return False
            r.requests += len(part)
            for i, s in enumerate(part):
                e = errors.get(i)
                if e is None:
                    r.applied.append(s)
                else:
                    r.failed.append((s, kernel_message(s.op, e.errno)))
            if errors and self.rollback:
                return False
        return not r.failed and not self.guard.interrupted()

    def roll_back(self, snap: Snapshot, keep_zero=frozenset()) -> None:
        """Undo everything sent, last first, from the snapshot; then compare
        the services touched with the snapshot."""
        from ipvsctl.errors import kernel_message

        r = self.report
        maybe = set(map(id, r.uncertain))
        sent = r.applied + r.uncertain  # in the order sent: an uncertain batch is always the last
        reqs, owners = [], []
        for step in reversed(sent):
            for req in snap.undo(step, keep_zero):
                reqs.append(req)
                owners.append(step)
        r.rolled_back = True
        if self.guard.interrupted():
            r.interrupted = self.guard.signum
        try:
            errors = self.backend.apply_many(reqs) if reqs else {}
        except b.KernelError as e:
            errors = {}
            r.rollback_failed.append((request_step(reqs[0]), "the undo batch failed and its outcome is "
                                      "unknown: " + kernel_message(e.op or reqs[0].op, e.errno)))
        r.requests += len(reqs)
        for i, e in errors.items():
            if id(owners[i]) in maybe:
                continue  # its step may never have been applied
            r.rollback_failed.append((request_step(reqs[i]), kernel_message(reqs[i].op, e.errno)))
        touched = list(dict.fromkeys(s.key for s in sent))
        after = P.table_of(listing.table(self.backend, counters=False, sort=False))
        now = {svc.key for svc, _ in after}
        r.rollback_leftovers = [k for k in touched if k not in snap.services and k in now]
        expected = snap.table(touched, keep_zero)
        keys = set(touched)
        r.rollback_problems = P.plan(expected, [e for e in after if e[0].key in keys])


def run(backend, desired, *, scope=None, prune: bool = False, drain: float | None = None,
        rollback: bool = True, netns: str | None = None, interval: float = 1.0,
        progress=None, on_wait=None, on_drain_start=None, lock: bool = True,
        guard: Guard | None = None, chunk: int = CHUNK, report: Report | None = None) -> Report:
    """Converge the live table to ``desired``; see the module's strategy.
    ``report``: fill this Report (callbacks may look at it while it runs)."""
    report = report if report is not None else Report()
    # ``guard``: one the caller has entered and deferred, and keeps until its
    # report is written (the apply command): it is used as it is.
    with (nullcontext(guard) if guard is not None else Guard(deferred=True)) as g:
        held = netns_lock(netns, on_wait, g.interrupted) if lock else nullcontext()
        try:
            with held:
                _run_locked(backend, desired, scope, prune, drain, rollback, interval, progress,
                            on_drain_start, report, g, chunk)
        except LockError:
            if g.signum is None:
                raise
            report.interrupted = g.signum  # while waiting for the lock: nothing was done
    # A signal that came after the last request was sent (while verifying)
    # finds nothing left to stop: the table is the desired one, and says so.
    return report


def _run_locked(backend, desired, scope, prune, drain, rollback, interval, progress,
                on_drain_start, report, g, chunk) -> None:
    snapshot = P.table_of(listing.table(backend, counters=False, sort=False))
    p = report.plan = P.plan(desired, snapshot, scope, prune)
    if p.in_sync:
        report.verify_plan = p
        return
    snap = Snapshot(snapshot)
    applier = Applier(backend, report, g, rollback, chunk)
    if drain is None:
        ok = applier.send(p.steps)
        if not ok and (g.interrupted() or rollback):
            applier.roll_back(snap)
            return
    else:
        removals = [s for s in p.steps if s.op in (P.DEL_DEST, P.DEL_SERVICE)]
        leaving = p.leaving()
        zero = [P.Step(P.EDIT_DEST, key, dest=d.replace(weight=0), old=d, note="drain",
                       changes=(P.Change("weight", d.weight, 0),))
                for key, d in leaving if d.weight != 0]
        first = [s for s in p.steps if s.op not in (P.DEL_DEST, P.DEL_SERVICE)] + zero
        ok = applier.send(first)
        if not ok and (g.interrupted() or rollback):
            applier.roll_back(snap)
            return
        drains = report.drained = [D.ServerDrain(key, d) for key, d in leaving]
        if on_drain_start is not None:
            on_drain_start(drains)
        D.wait(backend, drains, drain, interval, stop=g.interrupted, progress=progress)
        if g.interrupted():
            report.left_at_zero = drains  # every leaving server stays at weight 0
            applier.roll_back(snap, frozenset((dr.key, dr.ident) for dr in drains))
            return
        ok = applier.send(removals)
        if not ok and (g.interrupted() or rollback):
            applier.roll_back(snap, frozenset((dr.key, dr.ident) for dr in drains)
                              if g.interrupted() else frozenset())
            return
    report.verify_plan = P.plan(desired, P.table_of(listing.table(backend, counters=False, sort=False)), scope, prune)
