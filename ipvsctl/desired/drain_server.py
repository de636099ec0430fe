"""``ipvsctl drain``: one real server, weight 0, wait, then remove (or keep).

Strategy: the same state machine and loop as ``apply --drain``
(ipvsctl.desired.drain), for one server.  The namespace's apply lock is held
only while changing the table (weight 0 at the start, removal at the end),
not while waiting, so a long drain never blocks an apply; before removing,
the server is read again and left alone if someone gave it a weight
meanwhile.  The weight-0 edit carries every other field of the live entry.
"""

from __future__ import annotations

import errno as _errno
import sys

from ipvsctl import backend as b
from ipvsctl.desired import drain as D
from ipvsctl.desired import sysctls as S
from ipvsctl.labels import server_label, service_label
from ipvsctl.desired.lock import netns_lock
from ipvsctl.interrupt import Guard, signal_name
from ipvsctl.vocab import EXIT_INVALID, EXIT_KERNEL, EXIT_OK, EXIT_SIGNALLED, EXIT_TIMED_OUT



def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"drain: {message}\n")
    return status


def _find(backend, key, named):
    """The live entry of the named server, or an exit status."""
    from ipvsctl.errors import kernel_message

    try:
        dests = backend.destinations(key)
    except b.KernelError as e:
        return _fail(f"{service_label(key)}: {kernel_message(b.OP_GET_SERVICE, e.errno)}", EXIT_INVALID)
    for d in dests:
        if (d.af, d.addr, d.port) == (named.af, named.addr, named.port):
            return d
    return _fail(f"{server_label(named)} of {service_label(key)}: "
                 f"{kernel_message(b.OP_EDIT_DEST, _errno.ENOENT)}", EXIT_INVALID)


def run(backend, key, named, *, timeout: float, keep: bool, interval: float = 1.0,
        netns: str | None = None, sysctl_values=None, out=None, err=None) -> int:
    """Drain one server; the exit status (see ``ipvsctl drain --help``)."""
    from ipvsctl.desired.lock import LockError

    out = out or sys.stdout
    err = err or sys.stderr
    with Guard(deferred=True) as guard:
        try:
            return _run(backend, key, named, timeout, keep, interval, netns, sysctl_values, out, err,
                        guard)
        except LockError as e:
            if guard.signum is not None:
                return _fail("interrupted while waiting for the apply lock", EXIT_SIGNALLED + guard.signum)
            return _fail(e.strerror or str(e), EXIT_INVALID)


def _run(backend, key, named, timeout, keep, interval, netns, sysctl_values, out, err, guard) -> int:
    from ipvsctl.errors import kernel_message

    with netns_lock(netns, interrupted=guard.interrupted):
        live = _find(backend, key, named)
        if isinstance(live, int):
            return live
        if live.weight != 0:
            try:
                backend.apply(b.Request(b.OP_EDIT_DEST, service=key, dest=live.replace(weight=0)))
            except b.KernelError as e:
                return _fail(f"{server_label(live)}: {kernel_message(b.OP_EDIT_DEST, e.errno)}",
                             EXIT_KERNEL)
    dr = D.ServerDrain(key, live)
    out.write(f"draining {dr.label}: weight {live.weight} \u2192 0, up to {timeout:g} s\n")
    if sysctl_values:
        out.write("".join(f"  {line}\n" for line in S.lines(sysctl_values)))
    out.flush()
    progress = D.Progress(err)
    D.wait(backend, [dr], timeout, interval, stop=guard.interrupted, progress=progress)
    progress.finish()
    if dr.state == D.DRAINED:
        if keep:
            out.write(f"drained {dr.label} in {dr.seconds:.0f} s: kept at weight 0\n")
            return EXIT_OK
        return _remove(backend, dr, netns, guard, out)
    if dr.state == D.TIMED_OUT:
        out.write(f"timed out after {dr.seconds:.0f} s: {dr.label} still has {dr.counts_text()}; "
                  "left at weight 0\n")
        return EXIT_TIMED_OUT
    if dr.state == D.GONE:
        return _fail(f"{dr.label} left the table while draining (removed by someone else)",
                     EXIT_TIMED_OUT)
    if dr.state == D.REWEIGHTED:
        return _fail(f"{dr.label} was given a weight by someone else while draining: "
                     "drain abandoned, not removed", EXIT_TIMED_OUT)
    err.write(f"drain: interrupted by {signal_name(guard.signum)}: {dr.label} left at "
              f"weight 0 with {dr.counts_text()}\n")
    return EXIT_SIGNALLED + guard.signum


def _remove(backend, dr: D.ServerDrain, netns, guard, out) -> int:
    from ipvsctl.errors import kernel_message

    with netns_lock(netns, interrupted=guard.interrupted):
        dr.state = D.WAITING  # read it once more: still there, still at weight 0?
        D.poll(backend, [dr])
        if dr.state == D.GONE:
            out.write(f"drained {dr.label} in {dr.seconds:.0f} s (it left the table meanwhile)\n")
            return EXIT_OK
        if dr.state == D.REWEIGHTED:
            return _fail(f"{dr.label} was given a weight by someone else: not removed", EXIT_TIMED_OUT)
        dr.state = D.DRAINED
        try:
            backend.apply(b.Request(b.OP_DEL_DEST, service=dr.key, dest=dr.dest))
        except b.KernelError as e:
            return _fail(f"{server_label(dr.dest)}: {kernel_message(b.OP_DEL_DEST, e.errno)}", EXIT_KERNEL)
    out.write(f"drained {dr.label} in {dr.seconds:.0f} s: removed\n")
    return EXIT_OK
