"""-R above the kernel: the whole stream is checked before anything is sent,
and kernel failures are mapped back to their lines.  A fake backend stands in
for the kernel here; tests/kernel/test_restore.py runs the same paths for real.

SIGINT and SIGTERM during -R (issue 13, item 3): the restore runs through the
real NetlinkBackend and Transport over a fake IPVS (support.fake_ipvs), and
the fake sends the signal to this very process at a chosen moment (support.
signalling): while the stream is read, inside the send of the n-th window,
after the last.  The account the restore prints must match the fake's table
exactly.  tests/kernel/test_restore_signals.py does the same against the
real kernel, at random moments."""

from __future__ import annotations

import errno
import io
import os
import re
import signal

import _signal
import pytest
from support.fake_ipvs import KernelSocket, MemoryIPVS, Table, backend_over
from support.signalling import is_change, lines, over, services

from ipvsctl import backend as b
from ipvsctl import cli, session
from ipvsctl.interrupt import Guard
from ipvsctl.restore import RestoreLineError, apply, plan


class FakeBackend:
    def __init__(self, fail=()):
        self.fail = dict(fail)  # index in the batch -> errno
        self.batches = []

    def apply_many(self, requests):
        reqs = list(requests)
        self.batches.append(reqs)
        return {i: b.KernelError(e, reqs[i].op) for i, e in self.fail.items() if i < len(reqs)}


def test_a_bad_line_stops_everything_before_the_kernel():
    with pytest.raises(RestoreLineError) as e:
        plan(["-A -t 10.0.0.1:80", "", "-a -t 10.0.0.1:80 -r 10.1.1.1 -w x"])
    assert e.value.line_no == 3
    assert e.value.error.message == "illegal weight specified"


def test_comments_and_blank_lines_are_skipped():
    steps = plan(["# header", "", "   # indented", "-A -t 10.0.0.1:80"])
    assert list(steps.lines) == [4] and steps.commands == 1


def test_nested_restore_is_a_usage_error():
    with pytest.raises(RestoreLineError) as e:
        plan(["-A -t 10.0.0.1:80", "-R"])
    assert e.value.line_no == 2 and e.value.error.exit_code == 255 and e.value.error.try_help


def test_kernel_failures_are_reported_by_line_and_the_rest_applied():
    steps = plan(["-A -t 10.0.0.1:80", "# c", "-A -t 10.0.0.1:80", "-a -t 10.0.0.2:80 -r 10.1.1.1"])
    fake = FakeBackend(fail={1: errno.EEXIST, 2: errno.ESRCH})
    result = apply(steps, fake)
    assert len(fake.batches) == 1 and len(fake.batches[0]) == 3
    assert result.failed == [3, 4]
    assert result.err == ["line 3: Service already exists\n", "line 4: Service not defined\n"]
    assert result.summary() == "restore: 2 of 3 commands failed (lines 3, 4), 1 applied\n"
    assert result.status == 255 and result.applied == 1


def test_flush_is_a_request_before_the_first_line_not_a_line():
    steps = plan(["-A -t 10.0.0.1:80", "-A -t 10.0.0.1:80 -s nosuch", "-A -t 10.0.0.2:80"],
                 flush=True)
    fake = FakeBackend(fail={2: errno.ENOENT})  # index 0 is the flush
    result = apply(steps, fake)
    assert [r.op for r in fake.batches[0]] == [b.OP_FLUSH, b.OP_ADD_SERVICE, b.OP_ADD_SERVICE,
                                               b.OP_ADD_SERVICE]
    assert result.err == ["line 2: Scheduler or persistence engine not found\n"]
    assert result.summary() == "restore: 1 of 3 commands failed (lines 2), 2 applied\n"


def test_a_line_with_popts_next_word_syntax_goes_through_the_grammar():
    # "-s !#:+ -p 30": popt gives -s the next plain word ("30"), which -p
    # then takes as well; the shortcut for common lines must not guess.
    (req,) = plan(["-A -t 10.0.0.1:80 -s !#:+ -p 30"]).batch.requests
    assert (req.service.scheduler, req.service.timeout) == ("30", 30)


# --------------------------------------------------------------------------
# Signals and faults while sending
# --------------------------------------------------------------------------


def run_r(text: str, backend):
    out, err = io.StringIO(), io.StringIO()
    real = session.open_backend
    session.open_backend = lambda netns: backend
    try:
        status = cli.run_compat(["-R"], io.StringIO(text), out, err)
    finally:
        session.open_backend = real
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
    real = session.open_backend
    session.open_backend = lambda netns: backend
    from ipvsctl import restore

    size, restore.READ_SIZE = restore.READ_SIZE, 1000
    try:
        status = cli.run_compat(["-R"], Slow(text), out, err)
    finally:
        session.open_backend = real
        restore.READ_SIZE = size
    assert status == 128 + signal.SIGTERM
    assert err.getvalue() == ("restore: interrupted by SIGTERM while reading and checking the input: "
                              "nothing was applied (the kernel table is unchanged)\n")
    assert table.services == [] and not any(is_change(raw) for raw in sock.sent)


def test_a_conversation_that_breaks_off_says_which_lines_are_unknown():
    """No answer in time in the third window: the two before it are known,
    the third may or may not have been applied, the rest was not sent."""
    table = Table()
    backend, sock, _ = backend_over(table, timeout=0.05)

    class Mute(KernelSocket):
        windows = 0

        def send(self, buf):
            n = KernelSocket.send(self, buf)
            if is_change(bytes(buf)):
                self.windows += 1
                if self.windows == 3:
                    self.queue.clear()  # every answer of this window lost: nothing comes
            return n

        def recv_into(self, buf, nbytes=0, flags=0):
            if not self.queue:
                raise BlockingIOError(errno.EAGAIN, "nothing")
            return KernelSocket.recv_into(self, buf, nbytes, flags)

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
    monkeypatch.setattr(b, "BATCH_CHUNK", 100)
    kernel = MemoryIPVS()
    with Guard() as guard:
        guard.defer()
        kernel.before_batch = lambda k, reqs: os.kill(os.getpid(), signal.SIGINT) if len(k.batches) == 1 else None
        result = apply(plan(lines(1000)), kernel, guard)
    assert result.status == 130 and result.stopped and result.last_line == 200 and result.next_line == 201
    assert len(kernel.services) == 200
