"""interrupt.Guard: SIGINT and SIGTERM raise at once until the guarded
code defers them, then are only noted, to be seen at a safe point; a held
stretch ends with the signal it noted (issue 13, item 3)."""

from __future__ import annotations

import os
import signal

import _signal
import pytest

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
