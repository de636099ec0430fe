"""interrupt.Guard: SIGINT and SIGTERM raise at once until the guarded
code defers them, then are only noted, to be seen at a safe point; a held
stretch ends with the signal it noted (issue 13, item 3)."""

from __future__ import annotations

import os
import signal

import _signal
import pytest

import sys

from ipvsctl import interrupt
from ipvsctl.interrupt import Guard, Interrupted


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


def test_a_guard_that_notes_from_the_start():
    """apply and drain: every signal noted, seen at their own safe points."""
    with Guard(deferred=True) as g:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
        assert g.interrupted() and g.signum == signal.SIGTERM and g.status == 143



_AFTER_THE_GUARD = """
import io, os, signal, sys
sys.path.insert(0, {root!r})
from ipvsctl.interrupt import Guard
from ipvsctl.session import report
try:
    with Guard(ends_quietly={quiet}):
        pass
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):
        pass
except KeyboardInterrupt as e:
    err = io.StringIO()
    status = report(e, "ipvsctl", err)
    sys.stdout.write(err.getvalue() + str(status))
"""


@pytest.mark.parametrize("quiet", [True, False])
def test_a_ctrl_c_after_a_completed_restore_ends_quietly(quiet):
    """A restore whose work and account are complete: a Ctrl-C after its
    guard, reaching the error boundary, ends the process by SIGINT saying
    nothing, not "interrupted" (as if the work had been cut short)."""
    import subprocess
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    r = subprocess.run([sys.executable, "-c", _AFTER_THE_GUARD.format(root=root, quiet=quiet)],
                       capture_output=True, text=True, timeout=60)
    if quiet:
        assert (r.returncode, r.stdout, r.stderr) == (-signal.SIGINT, "", "")
    else:  # any other guard: the boundary says so, with 130
        assert (r.returncode, r.stdout, r.stderr) == (0, "interrupted\n130", "")


def test_completion_is_forgotten_when_a_new_guard_or_run_starts():
    with Guard(ends_quietly=True):
        pass
    assert interrupt.completed()
    with Guard():
        assert not interrupt.completed()
    assert not interrupt.completed()  # a plain guard never marks completion
    with pytest.raises(RuntimeError):
        with Guard(ends_quietly=True):
            raise RuntimeError  # ended by an exception: not completed
    assert not interrupt.completed()
    with Guard(ends_quietly=True):
        pass
    interrupt.reset()
    assert not interrupt.completed()
