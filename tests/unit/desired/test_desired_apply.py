"""apply above the kernel: batches, rollback from the snapshot, signals, drain
phases, the lock.  An in-memory IPVS (support.fake_ipvs.MemoryIPVS) stands in for the kernel;
tests/kernel/test_apply.py runs the same paths against the real one."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from support.fake_ipvs import MemoryIPVS

from ipvsctl import backend as b
from ipvsctl import model as m
from ipvsctl.desired import apply as A
from ipvsctl.desired import drain as D
from ipvsctl.desired import plan as P
from ipvsctl.desired.lock import LockError, netns_lock
from ipvsctl.desired.scope import Scope


@pytest.fixture(autouse=True)
def _lock_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("IPVSCTL_LOCK_DIR", str(tmp_path / "locks"))


def key(i, proto=m.IPPROTO_TCP):
    return m.ServiceKey(m.AF_INET, proto, f"10.0.0.{i}", 80)


def dest(i, **kw):
    return m.Destination(m.AF_INET, f"10.1.0.{i}", 80, kw.pop("fwd", m.FWD_MASQ), kw.pop("weight", 1), **kw)


LIVE = [(m.Service(key(1), "rr"), [dest(1), dest(2)]),
        (m.Service(key(2), "wlc"), [dest(1)]),
        (m.Service(key(9, m.IPPROTO_UDP), "rr"), [dest(7)])]  # not in the file


def desired_table():
    return [(m.Service(key(1), "wrr"), [dest(1, weight=3), dest(3)]),
            (m.Service(key(2), "wlc"), [dest(1)]),
            (m.Service(key(3), "sh"), [dest(4), dest(5)])]


def state(kernel):
    return {k: (s, dict(kernel.dests[k])) for k, s in kernel.services.items()}


def test_apply_converges_verifies_and_a_second_apply_sends_nothing():
    kernel = MemoryIPVS(LIVE)
    r = A.run(kernel, desired_table(), lock=True)
    assert r.status == 0 and r.verified and r.changed and not r.failed
    assert r.requests == len(kernel.sent) == len(r.plan.steps) == 7
    assert P.plan(desired_table(), kernel.table()).in_sync
    assert key(9, m.IPPROTO_UDP) in kernel.services  # not named, not pruned: untouched
    sent = len(kernel.sent)
    again = A.run(kernel, desired_table())
    assert again.status == 0 and not again.changed and again.requests == 0
    assert len(kernel.sent) == sent


def test_prune_within_scope():
    kernel = MemoryIPVS(LIVE)
    r = A.run(kernel, desired_table(), prune=True, scope=Scope.parse(["192.0.2.0/24", "10.0.0.0/24"]))
    assert r.status == 0 and key(9, m.IPPROTO_UDP) not in kernel.services


def test_a_refused_step_rolls_everything_back_to_the_snapshot():
    kernel = MemoryIPVS(LIVE)
    before = state(kernel)
    table = desired_table()
    table[2] = (m.Service(key(3), "nosuch"), table[2][1])  # refused: unknown scheduler (ENOENT)
    r = A.run(kernel, table)
    assert r.status == 255 and r.rolled_back and r.rollback_complete and not r.changed
    assert [(s.op, msg) for s, msg in r.failed][0] == (
        P.ADD_SERVICE, "Scheduler or persistence engine not found")
    assert state(kernel) == before
    # what was accepted is undone, last first, with the snapshot's values
    assert [s.op for s in r.applied] == [P.EDIT_SERVICE, P.DEL_DEST, P.EDIT_DEST, P.ADD_DEST]
    undo = kernel.sent[len(r.plan.steps):]
    assert [q.op for q in undo] == [P.DEL_DEST, P.EDIT_DEST, P.ADD_DEST, P.EDIT_SERVICE]
    assert undo[1].dest == dest(1) and undo[2].dest == dest(2) and undo[3].service == LIVE[0][0]


def test_no_rollback_keeps_going_and_reports_each_refusal():
    kernel = MemoryIPVS(LIVE)
    table = desired_table()
    table[0] = (m.Service(key(1), "nosuch"), table[0][1])
    r = A.run(kernel, table, rollback=False)
    assert r.status == 255 and not r.rolled_back
    assert [s.op for s, _ in r.failed] == [P.EDIT_SERVICE]
    assert kernel.dests[key(1)][(m.AF_INET, "10.1.0.1", 80)].weight == 3  # the rest was applied
    assert key(3) in kernel.services


def test_undo_of_a_removed_service_brings_back_its_servers():
    kernel = MemoryIPVS(LIVE)
    before = state(kernel)
    table = desired_table()
    table.append((m.Service(key(4), "nosuch"), []))  # refused in the batch that also prunes
    r = A.run(kernel, table, prune=True)
    assert [s.op for s in r.applied][-1] == P.DEL_SERVICE
    assert r.rolled_back and r.rollback_complete and state(kernel) == before


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_between_chunks_rolls_back(signum):
    kernel = MemoryIPVS(LIVE)
    before = state(kernel)
    calls = []
    handler = signal.getsignal(signum)

    def hook(k, reqs):
        calls.append(len(reqs))
        if len(calls) == 2:
            os.kill(os.getpid(), signum)

    kernel.before_batch = hook
    r = A.run(kernel, desired_table(), chunk=2)
    assert r.interrupted == signum and r.status == 128 + signum
    assert r.rolled_back and r.rollback_complete and state(kernel) == before
    assert calls[:3] == [2, 2, 4]  # two chunks sent, then the undo of both in one batch
    assert signal.getsignal(signum) == handler  # handlers restored


def test_a_signal_after_the_last_request_changes_nothing_more():
    kernel = MemoryIPVS(LIVE)
    real_table = kernel.table
    reads = []

    def table(counters=True):
        reads.append(1)
        if len(reads) == 2:  # the verification read: everything has been sent
            os.kill(os.getpid(), signal.SIGTERM)
        return real_table(counters)

    kernel.table = table
    r = A.run(kernel, desired_table())
    assert r.status == 0 and r.verified and not r.rolled_back and r.interrupted is None
    assert P.plan(desired_table(), real_table()).in_sync


def test_an_undo_batch_that_fails_says_the_rollback_is_incomplete():
    kernel = MemoryIPVS(LIVE)
    real = kernel.apply_many
    calls = []

    def many(reqs):
        calls.append(1)
        if len(calls) == 2:
            raise b.KernelError(105, "batch")
        return real(reqs)

    kernel.apply_many = many
    table = desired_table()
    table[2] = (m.Service(key(3), "nosuch"), [])
    r = A.run(kernel, table)
    assert r.status == 255 and r.rolled_back and not r.rollback_complete and r.changed
    assert "undo batch failed" in r.rollback_failed[0][1]


def test_an_unknown_batch_outcome_is_rolled_back_too():
    kernel = MemoryIPVS(LIVE)
    before = state(kernel)
    real = kernel.apply_many
    n = []

    def flaky(reqs):
        n.append(1)
        if len(n) == 2:
            real(reqs)  # the kernel applied it, but the answers were lost
            raise b.KernelError(105, "batch")  # ENOBUFS
        return real(reqs)

    kernel.apply_many = flaky
    r = A.run(kernel, desired_table(), chunk=3)
    assert r.status == 255 and "outcome is unknown" in r.failed[0][1]
    assert r.rolled_back and state(kernel) == before


# --- drain ---------------------------------------------------------------------


def test_apply_drain_zeroes_then_waits_then_removes():
    kernel = MemoryIPVS(LIVE)
    leaving = (key(1), (m.AF_INET, "10.1.0.2", 80))
    kernel.conns[leaving] = (2, 1, 0)
    seen = []

    def progress(drains, left):
        seen.append([(dr.state, dr.connections) for dr in drains])
        # the weight is 0 while it drains, and the rest of the plan is in place
        assert kernel.dests[key(1)][leaving[1]].weight == 0
        assert key(3) in kernel.services
        if len(seen) == 2:
            kernel.conns[leaving] = (0, 0, 0)

    r = A.run(kernel, desired_table(), drain=30, interval=0.05, progress=progress)
    assert r.status == 0 and r.verified
    assert seen[0] == [("waiting", 3)] and seen[-1] == [("drained", 0)]
    assert [dr.state for dr in r.drained] == [D.DRAINED]
    assert leaving[1] not in kernel.dests[key(1)]


def test_apply_drain_removes_at_the_timeout_and_names_what_was_left():
    kernel = MemoryIPVS(LIVE)
    kernel.conns[(key(9, m.IPPROTO_UDP), (m.AF_INET, "10.1.0.7", 80))] = (0, 4, 1)
    t0 = time.monotonic()
    r = A.run(kernel, desired_table(), prune=True, drain=0.3, interval=0.05)
    assert time.monotonic() - t0 < 5
    assert r.status == 0 and r.verified
    states = {(dr.dest.addr, dr.state, dr.connections) for dr in r.drained}
    assert ("10.1.0.7", D.TIMED_OUT, 5) in states and ("10.1.0.2", D.DRAINED, 0) in states
    assert key(9, m.IPPROTO_UDP) not in kernel.services


def test_a_signal_while_draining_rolls_back_but_leaves_the_draining_servers_at_weight_0():
    kernel = MemoryIPVS(LIVE)
    leaving = (m.AF_INET, "10.1.0.2", 80)
    kernel.conns[(key(1), leaving)] = (1, 0, 0)
    before = state(kernel)

    def progress(drains, left):
        os.kill(os.getpid(), signal.SIGINT)

    r = A.run(kernel, desired_table(), drain=30, interval=0.05, progress=progress)
    assert r.status == 130 and r.rolled_back and r.rollback_complete
    assert [dr.dest.addr for dr in r.left_at_zero] == ["10.1.0.2"]
    after = state(kernel)
    assert after[key(1)][1][leaving].weight == 0
    after[key(1)][1][leaving] = before[key(1)][1][leaving]
    assert after == before


def test_drain_loop_states():
    kernel = MemoryIPVS(LIVE)
    k1 = key(1)
    drains = [D.ServerDrain(k1, dest(1)), D.ServerDrain(k1, dest(2)), D.ServerDrain(key(2), dest(9))]
    kernel.dests[k1][(m.AF_INET, "10.1.0.1", 80)] = dest(1, weight=0)
    kernel.dests[k1][(m.AF_INET, "10.1.0.2", 80)] = dest(2, weight=0)
    kernel.conns[(k1, (m.AF_INET, "10.1.0.2", 80))] = (1, 0, 0)
    ticks = []

    def progress(ds, left):
        ticks.append(left)
        if len(ticks) == 2:  # someone gives it its weight back
            kernel.dests[k1][(m.AF_INET, "10.1.0.2", 80)] = dest(2, weight=5)

    D.wait(kernel, drains, timeout=10, interval=0.01, progress=progress)
    assert [dr.state for dr in drains] == [D.DRAINED, D.REWEIGHTED, D.GONE]


def test_progress_lines_off_a_terminal():
    import io

    out = io.StringIO()
    p = D.Progress(out, tty=False)
    dr = D.ServerDrain(key(1), dest(1, active_conns=2))
    p([dr], 9.6)
    p([dr], 8.4)  # same count: no new line
    dr.active = 1
    p([dr], 7.0)
    assert out.getvalue().splitlines() == [
        "draining 10.1.0.1:80 of TCP 10.0.0.1:80: 2 connections (2 active, 0 inactive, 0 persistence templates) left, 10 s left",
        "draining 10.1.0.1:80 of TCP 10.0.0.1:80: 1 connection (1 active, 0 inactive, 0 persistence templates) left, 7 s left",
    ]


def test_progress_on_a_terminal_rewrites_one_line():
    import io

    out = io.StringIO()
    p = D.Progress(out, tty=True)
    drains = [D.ServerDrain(key(1), dest(1, active_conns=2)), D.ServerDrain(key(1), dest(2, inact_conns=1))]
    p(drains, 29.7)
    drains[0].state = D.DRAINED
    drains[0].active = 0
    p(drains, 28.2)
    drains[1].state = D.TIMED_OUT
    p(drains, 0)
    assert out.getvalue() == (
        "\r\x1b[Kdraining 2 real servers: 2 still have connections (3 in all), 30 s left"
        "\r\x1b[Kdraining 2 real servers: 1 still has connections (1 in all), 28 s left"
        "\r\x1b[K")


# --- the lock --------------------------------------------------------------------


def test_the_lock_makes_a_second_holder_wait():
    order = []
    release = threading.Event()

    def first():
        with netns_lock(None):
            order.append("first in")
            release.wait(5)
            order.append("first out")

    t = threading.Thread(target=first)
    t.start()
    while not order:
        time.sleep(0.01)
    waited = []
    threading.Timer(0.2, release.set).start()
    with netns_lock(None, on_wait=waited.append):
        order.append("second in")
    t.join()
    assert order == ["first in", "first out", "second in"]
    assert waited == [str(os.getpid())]


def test_waiting_for_the_lock_ends_on_a_signal():
    with netns_lock(None):
        with pytest.raises(LockError, match="interrupted"):
            with netns_lock(None, interrupted=lambda: True):
                pass
