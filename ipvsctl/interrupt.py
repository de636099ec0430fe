"""SIGINT and SIGTERM while a command works: stop where the outcome is known.

Strategy: ``Guard`` installs one handler for both signals, in two modes.

- **Raising** (the default): the signal raises ``Interrupted`` at once,
  wherever the program is.  For the stretches where stopping anywhere is
  safe: a restore still reading and checking its input has sent nothing.
- **Noting** (``defer()``, or inside ``hold()``): the signal is only noted
  in ``signum``; the code that sends asks ``interrupted()`` at the points
  where it knows what the kernel did (between two transport windows,
  netlink.transport), and stops there.

``Interrupted`` is a KeyboardInterrupt that knows its signal, so code that
ends quietly on Ctrl-C ends the same way on SIGTERM, and the error boundary
(cli.main) exits with 128 + the signal's number.  Through the C module
``_signal`` (``signal`` would import ``enum``).  Outside the main thread no
handler can be installed and the guard does nothing.
"""

from __future__ import annotations

import _signal

from ipvsctl.vocab import EXIT_SIGNALLED

SIGINT = _signal.SIGINT
SIGTERM = _signal.SIGTERM
SIGNALS = (SIGINT, SIGTERM)
_NAMES = {SIGINT: "SIGINT", SIGTERM: "SIGTERM"}


def signal_name(signum: int) -> str:
    return _NAMES.get(signum, f"signal {signum}")


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM came (``signum``)."""

    def __init__(self, signum: int = SIGINT):
        super().__init__(signum)
        self.signum = signum


#: A Guard(ends_quietly=True) block ended normally: the command's work and
#: its account are complete (see Guard).
_completed = False


def completed() -> bool:
    """Whether a Guard(ends_quietly=True) block ended normally since the
    last ``reset()``: a KeyboardInterrupt now (after its handlers are gone)
    came as the command was ending, not while it worked."""
    return _completed


def reset() -> None:
    global _completed
    _completed = False


class Guard:
    """``with Guard() as g:`` SIGINT and SIGTERM raise Interrupted until
    ``g.defer()``; after it they are noted in ``g.signum`` (the first one).
    ``Guard(deferred=True)`` notes them from the start (apply, drain: they
    look at ``interrupted()`` at their own safe points).

    ``ends_quietly``: a block that ends normally has done the command's
    work and written its account (a restore), so a Ctrl-C that comes
    after it, as ipvsctl exits, ends the process quietly by SIGINT at the
    error boundary (session.report) rather than saying "interrupted", as
    if it had cut the work short (``completed()``)."""

    def __init__(self, deferred: bool = False, *, ends_quietly: bool = False):
        self.signum: int | None = None
        self.deferred = deferred
        self.ends_quietly = ends_quietly
        self._old: dict = {}

    def _handler(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
        if not self.deferred:
            raise Interrupted(signum)

    def __enter__(self) -> Guard:
        reset()
        for s in SIGNALS:
            try:
                self._old[s] = _signal.signal(s, self._handler)
            except ValueError:  # not the main thread: no handlers here
                break
        return self

    def __exit__(self, kind, value, tb) -> bool:
        global _completed
        if self.ends_quietly and kind is None:
            _completed = True  # before the handlers go: no moment without either
        for s, old in self._old.items():
            _signal.signal(s, old)
        self._old.clear()
        return False

    def defer(self) -> None:
        """From now on a signal is only noted (see ``interrupted``)."""
        self.deferred = True

    def interrupted(self) -> bool:
        return self.signum is not None

    def hold(self) -> _Held:
        """``with g.hold():`` a signal is noted, and raised at the end of the
        block (for a stretch that must not be cut, e.g. drawing a frame)."""
        return _Held(self)

    @property
    def status(self) -> int:
        """128 + the signal's number (for the exit status)."""
        return EXIT_SIGNALLED + (self.signum or SIGINT)


class _Held:
    def __init__(self, guard: Guard):
        self.guard = guard

    def __enter__(self) -> None:
        self.was = self.guard.deferred
        self.guard.deferred = True

    def __exit__(self, kind, value, tb) -> bool:
        self.guard.deferred = self.was
        if kind is None and not self.was and self.guard.signum is not None:
            raise Interrupted(self.guard.signum)
        return False
