"""Opening the kernel backend, and what a failing command tells its user.

Strategy: every command opens IPVS through ``open_backend`` (so tests
replace this one function), the way ipvsadm starts: by asking IPVS for its
version.  A command's own errors are ``Failure`` values (a message and an
exit status) raised wherever they are found; ``report`` is the one rule of
the error boundary (``ipvsctl.cli.main``, and ``cli.run_compat`` for the
ipvsadm surface, which tests call in-process) that turns an exception
leaving a command into its line on standard error and its exit status.
Imports nothing heavy: the ipvsadm path goes through here.
"""

from __future__ import annotations

import _signal
import sys

from ipvsctl.vocab import EXIT_INTERRUPTED, EXIT_INVALID, EXIT_KERNEL, EXIT_READ_FAILED, EXIT_SIGNALLED


class Failure(Exception):
    """An error for the user: printed as ``PROG: message``, then exit."""

    def __init__(self, message: str, exit_code: int = EXIT_READ_FAILED):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def open_backend(netns: str | None):
    """The kernel backend, checked the way ipvsadm starts: by asking IPVS for
    its version.  Without the rights (EPERM) or the module this raises
    KernelError ("Can't initialize ipvs"); a namespace that cannot be
    entered raises OSError (netlink.netns.NetnsNotFound when there is none)."""
    from ipvsctl.backend import KernelError
    from ipvsctl.netlink.backend import NetlinkBackend

    backend = NetlinkBackend(netns=netns)
    try:
        backend.info()
    except KernelError:
        backend.close()
        raise
    return backend


def open_failure(netns: str | None, e: Exception) -> Failure:
    """What to say when open_backend raised ``e`` (a KernelError or OSError)."""
    from ipvsctl.backend import KernelError
    from ipvsctl.errors import ipvs_unavailable, netns_open_error

    if isinstance(e, KernelError):
        return Failure(ipvs_unavailable(e.errno), EXIT_INVALID)
    return Failure(netns_open_error(netns, e), EXIT_INVALID)


class opened:
    """``with opened(netns) as backend``: the backend, closed afterwards;
    errors opening it become Failures."""

    __slots__ = ("netns", "backend")

    def __init__(self, netns: str | None):
        self.netns = netns

    def __enter__(self):
        from ipvsctl.backend import KernelError

        try:
            self.backend = open_backend(self.netns)
        except (KernelError, OSError) as e:
            raise open_failure(self.netns, e) from None
        return self.backend

    def __exit__(self, *exc):
        self.backend.close()
        return False


def read_failure(e) -> Failure:
    """A read of the table that failed (KernelError ``e``), in ipvsadm's words."""
    from ipvsctl.listing import failure_message

    return Failure(failure_message(e), EXIT_READ_FAILED)


def report(e: BaseException, prog: str, stderr) -> int | None:
    """The error boundary's rule: write what ``e``, leaving a command, says
    and return its exit status; None for an exception that is no failure of
    the input, the user or the kernel (a bug: the caller lets it go)."""
    from ipvsctl.backend import KernelError

    if isinstance(e, Failure):
        stderr.write(f"{prog}: {e.message}\n")
        return e.exit_code
    if isinstance(e, KernelError):
        # A fault of the conversation itself, e.g. no answer in time.
        from ipvsctl.errors import kernel_message

        stderr.write(f"{prog}: {kernel_message(e.op, e.errno)}\n")
        return EXIT_KERNEL
    if isinstance(e, KeyboardInterrupt):  # interrupt.Interrupted knows its signal (SIGTERM too)
        guards = sys.modules.get("ipvsctl.interrupt")  # loaded only by commands that guard
        if guards is not None and guards.completed():
            # The work was done and accounted for: a Ctrl-C as ipvsctl ends,
            # which ends it as a program without a handler ends (stdio.finish).
            _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
            _signal.raise_signal(_signal.SIGINT)
        stderr.write("interrupted\n")
        signum = getattr(e, "signum", None)
        return EXIT_INTERRUPTED if signum is None else EXIT_SIGNALLED + signum
    return None
