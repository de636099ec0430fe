"""SIGINT and SIGTERM during a restore, above a fake IPVS (issue 13, item 3).

The restore runs through the real NetlinkBackend and Transport over
fake_netlink_ipvs.FakeIPVS (a table in memory, answering as the kernel
does), and the signal is sent to this very process by the fake at a chosen
moment: while the stream is read, inside the send of the n-th window, after
the last.  The account the restore prints must match the fake's table
exactly.  tests/kernel/test_restore_signals.py does the same against the
real kernel, at random moments.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import sys

import _signal
import pytest
from click.testing import CliRunner
from fake_netlink_ipvs import FakeIPVS, Table, backend_over

from ipvsctl import backend as b
from ipvsctl import cli
from ipvsctl.interrupt import Guard, Interrupted
from ipvsctl.model import AF_INET, IPPROTO_TCP, Destination, Service, ServiceKey
from ipvsctl.netlink import codec
from ipvsctl.netlink import constants as C

N = 3000  # services: with the fake's buffers a window holds 512 requests


def lines(n: int = N) -> list[str]:
    return [f"-A -t 10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}:80 -s rr" for i in range(n)]


def services(table: Table) -> set[str]:
    return {f"-A -t {s.key.addr}:{s.key.port} -s {s.scheduler}" for s in table.services}


class Signalling(FakeIPVS):
    """Sends ``signum`` to this process while it receives its ``at``-th
    window of changes (counted from 1), once the window is handled."""

    at = 0
    signum = signal.SIGTERM
    windows = 0

    def send(self, buf) -> int:
        n = FakeIPVS.send(self, buf)
        if _is_change(bytes(buf)):
            self.windows += 1
            if self.windows == self.at:
                os.kill(os.getpid(), self.signum)
        return n


def _is_change(raw: bytes) -> bool:
    return any(t >= C.NLMSG_MIN_TYPE and p[0] in (C.IPVS_CMD_NEW_SERVICE, C.IPVS_CMD_NEW_DEST,
                                                  C.IPVS_CMD_FLUSH)
               and not f & C.NLM_F_DUMP for t, f, _s, p in codec.iter_messages(raw))


def over(table: Table, at: int, signum: int):
    """A backend over ``table`` whose 'kernel' signals at window ``at``."""
    backend, sock, _ = backend_over(table)
    sig = Signalling(table)
    sig.at, sig.signum = at, signum
    backend._t.sock = sig
    return backend, sig


def run_r(text: str, backend):
    out, err = io.StringIO(), io.StringIO()
    real = cli.open_backend
    cli.open_backend = lambda netns: backend
    try:
        status = cli.run_compat(["-R"], io.StringIO(text), out, err)
    finally:
        cli.open_backend = real
    return status, out.getvalue(), err.getvalue()


SENT = re.compile(r"restore: interrupted by (SIG\w+): every line up to line (\d+) was sent "
                  r"\((\d+) applied, (\d+) failed[^)]*\)\)?; from line (\d+) on nothing was applied$")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("at", [1, 3])
def test_a_signal_while_sending_stops_after_that_window_and_says_where(signum, at):
    table = Table()
    backend, sock = over(table, at, signum)
    window = backend._t.window_msgs
    status, out, err = run_r("\n".join(lines()) + "\n", backend)
    assert status == 128 + signum
    m = SENT.match(err.splitlines()[-1])
    assert m, err
    sent = int(m.group(2))
    assert m.group(1) == signal.Signals(signum).name
    assert sent == at * window and int(m.group(3)) == sent and int(m.group(5)) == sent + 1
    assert services(table) == set(lines()[:sent])  # exactly what was said
    assert _signal.getsignal(signum) in (signal.default_int_handler, signal.SIG_DFL)


def test_failures_in_the_windows_sent_are_reported_with_the_account():
    table = Table()
    backend, sock = over(table, 2, signal.SIGTERM)
    stream = lines()
    stream[5] = stream[3]  # already exists when it comes: line 6 fails
    status, out, err = run_r("\n".join(stream) + "\n", backend)
    window = backend._t.window_msgs
    assert status == 128 + signal.SIGTERM
    assert err.splitlines()[0] == "line 6: Service already exists"
    assert err.splitlines()[-1] == (
        f"restore: interrupted by SIGTERM: every line up to line {2 * window} was sent "
        f"({2 * window - 1} applied, 1 failed (lines 6)); from line {2 * window + 1} on nothing was applied")


def test_a_signal_in_the_last_window_leaves_nothing_to_stop():
    table = Table()
    backend, sock = over(table, 1, signal.SIGINT)
    status, out, err = run_r("\n".join(lines(100)) + "\n", backend)  # one window
    assert status == 130
    assert err == ("restore: interrupted by SIGINT after the last line was sent: nothing was left "
                   "to stop (100 applied, 0 failed)\n")
    assert services(table) == set(lines(100))


def test_a_signal_while_checking_changes_nothing():
    class Slow(io.StringIO):
        reads = 0

        def read(self, size=-1):
            self.reads += 1
            if self.reads == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return super().read(size)

    table = Table()
    backend, sock = over(table, 0, signal.SIGTERM)
    text = "\n".join(lines()) + "\n"
    out, err = io.StringIO(), io.StringIO()
    real = cli.open_backend
    cli.open_backend = lambda netns: backend
    from ipvsctl import restore

    size, restore.READ_SIZE = restore.READ_SIZE, 1000
    try:
        status = cli.run_compat(["-R"], Slow(text), out, err)
    finally:
        cli.open_backend = real
        restore.READ_SIZE = size
    assert status == 128 + signal.SIGTERM
    assert err.getvalue() == ("restore: interrupted by SIGTERM while reading and checking the input: "
                              "nothing was applied (the kernel table is unchanged)\n")
    assert table.services == [] and not any(_is_change(raw) for raw in sock.sent)


def test_signals_are_blocked_while_a_window_is_sent():
    """So that no kernel call sees a signal pending, and the window is whole."""
    seen = []

    class Watching(FakeIPVS):
        def send(self, buf):
            seen.append(signal.SIGTERM in _signal.pthread_sigmask(_signal.SIG_BLOCK, []))
            return FakeIPVS.send(self, buf)

    table = Table()
    backend, _, _ = backend_over(table)
    backend._t.sock = Watching(table)
    from ipvsctl.fastline import request

    batch = backend.batch()
    for line in lines(1200):
        batch.add(request(line.split()))
    assert batch.send(0, 600, lambda: False) == ({}, 600)
    assert batch.send(600, 1200) == ({}, 1200)  # nobody to stop: nothing blocked
    assert seen == [True, True, False, False]
    assert signal.SIGTERM not in _signal.pthread_sigmask(_signal.SIG_BLOCK, [])  # unblocked after


def test_a_conversation_that_breaks_off_says_which_lines_are_unknown():
    """No answer in time in the third window: the two before it are known,
    the third may or may not have been applied, the rest was not sent."""
    table = Table()
    backend, sock, _ = backend_over(table, timeout=0.05)

    class Mute(FakeIPVS):
        windows = 0

        def send(self, buf):
            n = FakeIPVS.send(self, buf)
            if _is_change(bytes(buf)):
                self.windows += 1
                if self.windows == 3:
                    self.queue.clear()  # every answer of this window lost: nothing comes
            return n

        def recv_into(self, buf, nbytes=0, flags=0):
            if not self.queue:
                raise BlockingIOError(errno.EAGAIN, "nothing")
            return FakeIPVS.recv_into(self, buf, nbytes, flags)

    backend._t.sock = Mute(table)
    window = backend._t.window_msgs
    status, out, err = run_r("\n".join(lines()) + "\n", backend)
    assert status == 255
    assert err.splitlines()[-1] == (
        f"restore: the kernel conversation broke off at line {2 * window + 1} (The kernel did not "
        f"answer in time (IPVSCTL_NETLINK_TIMEOUT, default 30 seconds)); the lines before it: "
        f"{2 * window} applied, 0 failed; lines {2 * window + 1} to {3 * window} may or may not have "
        f"been applied (read the table back); from line {3 * window + 1} on nothing was sent")
    assert services(table) == set(lines()[:3 * window])  # the fake did apply the third


def test_the_default_batch_stops_between_chunks_too(monkeypatch):
    """A backend without a batch of its own (the fakes above the kernel)."""
    from fakeipvs import FakeIPVS as Memory

    from ipvsctl.restore import apply, plan

    monkeypatch.setattr(b, "BATCH_CHUNK", 100)
    kernel = Memory()
    with Guard() as guard:
        guard.defer()
        kernel.before_batch = lambda k, reqs: os.kill(os.getpid(), signal.SIGINT) if len(k.batches) == 1 else None
        result = apply(plan(lines(1000)), kernel, guard)
    assert result.status == 130 and result.stopped and result.last_line == 200 and result.next_line == 201
    assert len(kernel.services) == 200


# --------------------------------------------------------------------------
# ipvsctl restore (click), lines and JSON
# --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def names_available(monkeypatch):
    """This host has no IPVS modules: restore's check of scheduler names would refuse."""
    from ipvsctl import schedulers

    monkeypatch.setattr(schedulers, "check", lambda kind, name, probe: (schedulers.AVAILABLE, "loaded"))


def run_restore(args, backend, tmp_path, text: str):
    from ipvsctl.app import run_app

    f = tmp_path / "input"
    f.write_text(text)
    real = cli.open_backend
    cli.open_backend = lambda netns: backend
    try:
        with CliRunner().isolation() as outs:
            status = run_app(["restore", *args, str(f)])
            sys.stdout.flush()
            sys.stderr.flush()
            err = outs[1].getvalue().decode() if len(outs) > 2 else outs[0].getvalue().decode()
    finally:
        cli.open_backend = real
    return status, err


def test_restore_stops_and_says_where(tmp_path):
    table = Table()
    backend, sock = over(table, 2, signal.SIGINT)
    status, err = run_restore([], backend, tmp_path, "\n".join(lines()) + "\n")
    window = backend._t.window_msgs
    assert status == 130
    assert err.splitlines()[-1] == (
        f"restore: interrupted by SIGINT: every line up to line {2 * window} was sent "
        f"({2 * window} applied, 0 failed); from line {2 * window + 1} on nothing was applied")
    assert services(table) == set(lines()[:2 * window])


def test_restore_that_clears_puts_the_table_back_on_a_signal(tmp_path):
    table = Table()
    old = Service(ServiceKey(AF_INET, IPPROTO_TCP, "192.0.2.1", 80), "wlc")
    table.add_service(old)
    table.add_dest(old.key, Destination(AF_INET, "198.51.100.1", 80))
    backend, sock = over(table, 2, signal.SIGTERM)
    status, err = run_restore(["--flush"], backend, tmp_path, "\n".join(lines()) + "\n")
    assert status == 143
    last = err.splitlines()[-1]
    assert last.startswith("restore: interrupted by SIGTERM: every line up to line ")
    assert last.endswith("; the table was put back as it was (1 services, 1 real servers; "
                         "counters start again from zero)")
    assert [s.key for s in table.services] == [old.key]
    assert [(d.addr, d.port) for d in table.dests[old.key]] == [("198.51.100.1", 80)]


def test_restore_json_stops_and_says_where(tmp_path):
    doc = {"services": [{"family": "inet", "protocol": "tcp", "address": f"10.0.{i // 250}.{i % 250 + 1}",
                         "port": 80, "scheduler": "rr", "destinations": []} for i in range(N)]}
    table = Table()
    backend, sock = over(table, 1, signal.SIGTERM)
    window = backend._t.window_msgs
    status, err = run_restore(["--json"], backend, tmp_path, json.dumps(doc))
    assert status == 143
    assert err.splitlines()[-1] == (
        f"restore: interrupted by SIGTERM: every request up to services[{window - 1}] was sent "
        f"({window} applied, 0 failed); from services[{window}] on nothing was applied")
    assert len(table.services) == window


def test_a_signal_before_anything_is_sent_changes_nothing(tmp_path):
    from ipvsctl import app

    table = Table()
    backend, sock = over(table, 0, signal.SIGINT)
    real = app._names

    def names(job):  # while the names are checked: nothing sent yet
        os.kill(os.getpid(), signal.SIGINT)
        return real(job)

    app._names = names
    try:
        status, err = run_restore([], backend, tmp_path, "\n".join(lines(10)) + "\n")
    finally:
        app._names = real
    assert status == 130
    assert err == "ipvsctl: restore: interrupted by SIGINT before anything was sent: nothing was changed\n"
    assert table.services == []


# --------------------------------------------------------------------------
# The guard itself
# --------------------------------------------------------------------------


def test_the_guard_raises_until_deferred_then_notes():
    with Guard() as g:
        with pytest.raises(Interrupted) as e:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
        assert e.value.signum == signal.SIGTERM and isinstance(e.value, KeyboardInterrupt)
        g.signum = None
        g.defer()
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
        assert g.signum == signal.SIGINT and g.status == 130
    assert _signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert _signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_held_stretches_end_after_the_block():
    with Guard() as g:
        with pytest.raises(Interrupted):
            with g.hold():
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):
                    pass
                done = True
        assert done
