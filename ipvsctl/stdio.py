"""The standard streams when they fail: coreutils' conventions, ipvsadm's signals.

Strategy: ``prepare()`` runs first in ``cli.main`` and ``finish(status)``
last; between them no command has to think about its output failing.

- **A reader that leaves** (``ipvsctl -Ln | head -1``): SIGPIPE's default
  action is restored (Python starts with SIGPIPE ignored, which turns a
  gone reader into BrokenPipeError tracebacks), so ipvsctl dies of SIGPIPE at
  its next write, quietly, as ipvsadm does: the shell sees 141 and
  ``set -o pipefail`` sees the failure.  One system call through the C
  module ``_signal`` (already loaded at start-up; ``signal`` would import
  ``enum``).
- **Any other write error on standard output** (``> /dev/full``: ENOSPC; EIO;
  a closed descriptor: EBADF): the command stops at once and ipvsctl prints
  ``ipvsctl: write error: <reason>`` and exits 1, or with the command's own
  status when that was already non-zero.  ipvsadm ignores these and exits 0
  (docs/compat.md).
- **Standard error failing** cannot be reported anywhere: what was to be
  written is dropped, the command goes on, and a status of 0 becomes 1
  (coreutils' ``close_stdout`` does the same).
- **A closed standard stream at start** (``>&-``, ``2>&-``, ``<&-``): its
  descriptor is filled with /dev/null opened the other way round (read-only
  for 1 and 2, write-only for 0), as gnulib's ``stdopen`` does.  So nothing
  opened later (the netlink socket, a file) can land on 0-2 and be written
  to by mistake, and every use of the stream fails with EBADF, which is then
  reported like any other error of that stream.
- **Commands that change the table** (``-R``, ``restore``, ``apply``,
  ``drain``) run inside ``held()``: a write error, a gone reader included
  (SIGPIPE is ignored meanwhile), is noted and the output dropped, so the
  change, its rollback and its report to standard error all happen; then
  ``finish`` reports the error, or dies of SIGPIPE, as above.

How an error is known to be the output's: ``sys.stdout`` and ``sys.stderr``
are re-made over a ``FileIO`` subclass whose ``write`` notes the failure and
raises ``OutputError``; the buffered and text layers above it are Python's
own C classes, so each write costs what it cost before (the subclass is
called once per 8 KiB buffer).  Streams replaced by the caller (a test's
StringIO) are left alone.
"""

from __future__ import annotations

import _signal
import io
import os
import sys

from ipvsctl.vocab import EXIT_WRITE_FAILED


class OutputError(OSError):
    """A write to standard output failed (``errno``, ``strerror`` as usual)."""


class _Raw(io.FileIO):
    """The descriptor under a standard stream: the first failed write is
    noted in ``failed``; after it every write is dropped (so the final flush
    at interpreter exit finds nothing to complain about)."""

    def write(self, data):
        if self.failed is not None:
            return len(data)
        try:
            return io.FileIO.write(self, data)
        except OSError as e:
            self.failed = e
            if self.raises and not _HELD:
                raise OutputError(e.errno, e.strerror) from None
            return len(data)


_out: _Raw | None = None
_err: _Raw | None = None
_HELD = False


def _fill_closed() -> None:
    """/dev/null, opened the other way round, on each closed descriptor of
    0-2 (Python sets the stream to None when its descriptor is not open)."""
    for fd, name, mode in ((0, "stdin", os.O_WRONLY), (1, "stdout", os.O_RDONLY),
                           (2, "stderr", os.O_RDONLY)):
        if getattr(sys, name) is not None:
            continue
        got = os.open(os.devnull, mode)
        if got != fd:
            os.dup2(got, fd)
            os.close(got)
        if fd == 0:
            stream = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "rb", closefd=False)),
                                      encoding="utf-8", errors="surrogateescape", newline="\n")
        else:
            stream = io.TextIOWrapper(io.BufferedWriter(io.FileIO(fd, "wb", closefd=False)),
                                      encoding="utf-8", errors="backslashreplace",
                                      newline="\n", line_buffering=True)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _remade(old, fd: int, raises: bool):
    """``old`` (a standard text stream) again, over a _Raw on ``fd``."""
    raw = _Raw(fd, "wb", closefd=False)
    raw.failed = None
    raw.raises = raises
    unbuffered = isinstance(getattr(old, "buffer", None), io.FileIO)  # python -u
    binary = raw if unbuffered else io.BufferedWriter(raw)
    new = io.TextIOWrapper(binary, encoding=old.encoding, errors=old.errors, newline="\n",
                           line_buffering=old.line_buffering,
                           write_through=unbuffered or old.write_through)
    return new, raw


def prepare() -> None:
    """At start: SIGPIPE's default action back, closed descriptors filled,
    standard output and error watched (see the module's strategy)."""
    global _out, _err
    if sys.stdout is not sys.__stdout__ or sys.stderr is not sys.__stderr__:
        return  # the caller replaced them (a test): theirs to watch
    _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
    if sys.stdin is None or sys.stdout is None or sys.stderr is None:
        _fill_closed()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass
    sys.stdout, _out = _remade(sys.stdout, 1, raises=True)
    sys.stderr, _err = _remade(sys.stderr, 2, raises=False)


class held:
    """``with held():`` the table is being changed: output errors, a gone
    reader included, are noted but stop nothing (``finish`` reports them)."""

    def __enter__(self) -> held:
        global _HELD
        self._was = _HELD
        _HELD = True
        if _out is not None and not self._was:
            _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
        return self

    def __exit__(self, *exc) -> bool:
        global _HELD
        _HELD = self._was
        if _out is not None and not self._was:
            _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
        return False


def _flush(stream) -> None:
    try:
        stream.flush()
    except OSError:
        pass  # noted by its _Raw


def finish(status: int, prog: str = "ipvsctl") -> int:
    """The exit status, once standard output is flushed: a write error is
    reported (or, for a gone reader, ipvsctl dies of SIGPIPE here).

    A Ctrl-C that comes now, when the command's work is done and its own
    signal handling gone, ends ipvsctl by SIGINT, silently, as a program
    without a handler ends: Python's default handler would raise it here
    and print a traceback (seen: a restore signalled as it finished)."""
    try:
        return _finish(status, prog)
    except KeyboardInterrupt:
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        _signal.raise_signal(_signal.SIGINT)
        raise  # not reached: SIGINT's default action ends the process


def _finish(status: int, prog: str) -> int:
    if _out is None:
        return status
    _flush(sys.stdout)
    failed = _out.failed
    if failed is not None:
        _flush(sys.stderr)
        if failed.errno == 32:  # EPIPE: as if SIGPIPE had come at the write
            _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
            _signal.raise_signal(_signal.SIGPIPE)
        sys.stderr.write(f"{prog}: write error: {failed.strerror or os.strerror(failed.errno)}\n")
        status = status or EXIT_WRITE_FAILED
    _flush(sys.stderr)
    if _err is not None and _err.failed is not None and not status:
        status = EXIT_WRITE_FAILED
    return status


def output_failed() -> OSError | None:
    """The write error of standard output so far, if any."""
    return _out.failed if _out is not None else None
