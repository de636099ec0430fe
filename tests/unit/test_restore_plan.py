"""-R above the kernel: the whole stream is checked before anything is sent,
and kernel failures are mapped back to their lines.  A fake backend stands in
for the kernel here; tests/kernel/test_restore.py runs the same paths for real."""

from __future__ import annotations

import errno

import pytest

from ipvsctl import backend as b
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
