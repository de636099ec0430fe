"""The generic-netlink socket that talks to IPVS.

Strategy
--------
One ``AF_NETLINK``/``NETLINK_GENERIC`` socket per backend, opened (optionally
inside a named network namespace), with the IPVS family id resolved once per
process and namespace.  Two ways to talk here, and the steps of a third:

* ``request(msg)``: one request; returns the reply payloads, or raises
  ``KernelError``.
* ``batch(msgs)``: many requests pipelined.  The kernel runs every message of
  one ``sendmsg`` in order, synchronously, inside the send (genetlink's
  ``netlink_rcv_skb``), continues after a failing message, and answers a
  message only when it failed or asked for an ACK; each error carries the
  failing message's sequence number.  So: pack a window of requests into one
  buffer, none asking for an ACK, end it with a barrier, send, then read
  error reports until the barrier's ACK arrives; the result is exactly what
  applying each request alone, in order, would give.  ``send_packed`` is
  the same over requests held encoded back to back (a restore's), and can
  stop between two windows, where the outcome of everything sent is known.
* ``next_seq``, ``send``, ``recv``, ``messages``, ``reset``: the
  conversation's own steps (sequence numbers, one send, one datagram with
  the faults below, a datagram's messages, a fresh socket), on which
  ``dumps.DumpReader`` reads the multi-part replies of dump requests.

The barrier is an NLMSG_NOOP with NLM_F_ACK: ``netlink_rcv_skb`` acks
control messages without handing them to any family, so it is always
answered, after everything before it.  Asking for an ACK on the last real
request instead is not safe: when a handler returns -EINTR the kernel sends
neither ACK nor error (meant for dump starts, but stopping a sync daemon
whose thread has not run yet returns kthread_stop's -EINTR too), and the
reader would wait forever.  Seen on Linux 6.1 (UML): start a master daemon,
list daemons, stop it at once.  ``request`` uses the same barrier.

Sizing the window: every error report queued on our socket costs its skb's
truesize against the receive buffer; if the buffer overflows, reports are
dropped (ENOBUFS) and the failing requests can no longer be identified.  The
window therefore holds at most ``rcvbuf // ERROR_REPORT_COST`` messages (so
even a window in which every request fails fits), and at most the send
buffer's size in bytes (``netlink_sendmsg`` refuses a message larger than
sk_sndbuf - 32).  NETLINK_CAP_ACK keeps each error report to its header, and
SO_RCVBUFFORCE/SO_SNDBUFFORCE (root) or SO_RCVBUF/SO_SNDBUF (others, capped by
net.core.[rw]mem_max) make the buffers large.

Faults, and what each becomes (tests/unit/netlink/test_transport_faults.py
injects every one):

* replies lost (ENOBUFS on receive: the kernel dropped messages for want of
  room) or cut (MSG_TRUNC: a datagram longer than the buffer, which then
  grows): ``RepliesLost``.  The socket is replaced by a fresh one (a dump may
  still run on the old one, and its stale replies must not be read as
  answers).  A dump is read again (dumps.py); a read request is asked
  again; in a batch, every request of the window whose report did not
  arrive gets ENOBUFS, "outcome unknown", and the batch goes on: which of
  them took effect is never guessed.
* malformed replies (a length that does not fit, a short error report):
  ``MalformedReply``, handled like lost ones.
* EINTR (a signal whose handler returned) and EAGAIN (a wake-up with nothing
  to read): read again.
* no answer within ``timeout`` seconds (IPVSCTL_NETLINK_TIMEOUT, default
  30; 0 waits forever): ``NetlinkTimeout``, so a kernel that never answers
  cannot hang a provisioning run.  (A kernel stuck *inside* the send, on an
  uninterruptible lock, holds any process; that cannot be bounded.)
* replies of an earlier, abandoned exchange or repeated ones (sequence
  numbers not of this exchange): skipped.  The kernel answers each socket
  in order; a dump's entries are checked by the backend
  (``ipvsctl.netlink.consistency``), so a part lost, repeated or out of
  place in a dump is caught there.

The framing this stands on is wire.py's, the namespaces netns.py's.
"""

from __future__ import annotations

import _signal
import errno as _errno
import os
import struct
import time
import _socket as socket  # the C module: socket.py's enum classes cost ~6 ms of start-up

from ipvsctl.backend import BatchBroken, KernelError
from ipvsctl.netlink import constants as C
from ipvsctl.netlink import wire
from ipvsctl.netlink.netns import in_netns

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: collections.abc imports collections (start-up time)
    from collections.abc import Sequence

_SEQ_MASK = 0xFFFFFFFF
#: Receive buffer (one netlink datagram; dump parts are at most 32 KiB).
#: A datagram that does not fit grows it, up to RECV_BUFSIZE_MAX.
RECV_BUFSIZE = 1 << 16
RECV_BUFSIZE_MAX = 1 << 20
#: Seconds to wait for each answer of the kernel (environment:
#: IPVSCTL_NETLINK_TIMEOUT; 0 or less waits forever).
DEFAULT_TIMEOUT = 30.0
#: A read request whose replies were lost or garbled is sent this many times.
READ_ATTEMPTS = 3
#: Asked-for socket buffer sizes (the kernel doubles what it is given).
SOCKET_RCVBUF = 8 << 20
SOCKET_SNDBUF = 4 << 20
#: Upper bounds for one window (one sendmsg).
WINDOW_BYTES = 256 << 10
WINDOW_MSGS = 2048
#: Receive-buffer cost of one queued error report (skb truesize of a
#: 36-byte NLMSG_ERROR is ~768 bytes on x86-64; rounded up generously).
ERROR_REPORT_COST = 2048
#: Blocked while a window is sent, when the caller stops on them (send_packed).
_STOP_SIGNALS = (_signal.SIGINT, _signal.SIGTERM)


class IPVSUnavailable(KernelError):
    """The kernel has no IPVS (no "IPVS" generic-netlink family, even after modprobe)."""

    def __init__(self, op: str = ""):
        super().__init__(_errno.ENOPROTOOPT, op)


class RepliesLost(KernelError):
    """Replies of the kernel did not arrive whole: dropped for want of room in
    the receive buffer (ENOBUFS) or cut (MSG_TRUNC).  For a change, whether
    it took effect is unknown."""

    def __init__(self, op: str = "", detail: str = ""):
        super().__init__(_errno.ENOBUFS, op)
        self.detail = detail


class MalformedReply(KernelError):
    """A reply that is not well-formed netlink (errno EPROTO)."""

    def __init__(self, op: str = "", detail: str = ""):
        super().__init__(_errno.EPROTO, op)
        self.detail = detail


class NetlinkTimeout(KernelError):
    """The kernel did not answer within the timeout (errno ETIMEDOUT)."""

    def __init__(self, op: str = "", seconds: float | None = None):
        super().__init__(_errno.ETIMEDOUT, op)
        self.seconds = seconds


def default_timeout() -> float | None:
    """IPVSCTL_NETLINK_TIMEOUT (seconds), else DEFAULT_TIMEOUT; None: no limit."""
    raw = os.environ.get("IPVSCTL_NETLINK_TIMEOUT")
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else None


# IPVS family id per namespace (the id is global in practice; keyed anyway).
_FAMILY_IDS: dict[str | None, int] = {}
_MODPROBE_TRIED = False


def _new_socket() -> socket.socket:
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, C.NETLINK_GENERIC)


def _socket_in_netns(netns: str) -> socket.socket:
    return in_netns(netns, _new_socket)


def _modprobe_ipvs() -> None:
    """Load ip_vs once per process, as ipvsadm does when the family is missing."""
    global _MODPROBE_TRIED
    if _MODPROBE_TRIED:
        return
    _MODPROBE_TRIED = True
    import shutil
    import subprocess

    exe = shutil.which("modprobe") or next(
        (p for p in ("/sbin/modprobe", "/usr/sbin/modprobe") if os.path.exists(p)), None
    )
    if exe is None:
        return
    try:
        subprocess.run([exe, "-q", "ip_vs"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    except OSError:
        pass


def _set_buffer(sock: socket.socket, force_opt: int, opt: int, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_opt, size)
        return
    except OSError:  # EPERM without CAP_NET_ADMIN
        pass
    try:
        sock.setsockopt(socket.SOL_SOCKET, opt, size)
    except OSError:
        pass


def _open_socket(netns: str | None) -> socket.socket:
    """A generic-netlink socket, bound, with small error reports and big buffers."""
    # "" is a name (--netns=) that names no namespace, not "this one"
    sock = _socket_in_netns(netns) if netns is not None else _new_socket()
    try:
        sock.bind((0, 0))
        # Error reports carry only the failing request's header (Linux
        # 4.3+; older kernels echo the whole request, which
        # ERROR_REPORT_COST still covers).
        try:
            sock.setsockopt(C.SOL_NETLINK, C.NETLINK_CAP_ACK, 1)
        except OSError:
            pass
        _set_buffer(sock, C.SO_RCVBUFFORCE, C.SO_RCVBUF, SOCKET_RCVBUF)
        _set_buffer(sock, C.SO_SNDBUFFORCE, C.SO_SNDBUF, SOCKET_SNDBUF)
    except BaseException:
        sock.close()
        raise
    return sock


class Transport:
    """A generic-netlink socket bound to the IPVS family.

    ``sock`` and ``family`` may be injected (tests use a fake socket), and
    with them ``sock_factory``, which makes the fresh socket that replaces
    one whose replies were lost (without it, the same socket is kept).
    ``timeout``: seconds to wait for each answer (default: see
    ``default_timeout``; None: forever).
    """

    def __init__(
        self,
        netns: str | None = None,
        *,
        sock=None,
        family: int | None = None,
        window_bytes: int = WINDOW_BYTES,
        window_msgs: int = WINDOW_MSGS,
        sock_factory=None,
        timeout: float | None | bool = True,
    ):
        self.netns = netns
        self._seq = 0
        self._rbuf = bytearray(RECV_BUFSIZE)
        self.timeout = default_timeout() if timeout is True else timeout
        if sock is None:
            sock_factory = lambda: _open_socket(netns)  # noqa: E731
            sock = sock_factory()
        self._factory = sock_factory
        self.sock = sock
        self._set_timeout()
        try:
            rcvbuf = sock.getsockopt(socket.SOL_SOCKET, C.SO_RCVBUF)
            sndbuf = sock.getsockopt(socket.SOL_SOCKET, C.SO_SNDBUF)
        except (OSError, AttributeError):
            rcvbuf = sndbuf = 0
        if rcvbuf:
            window_msgs = max(1, min(window_msgs, rcvbuf // ERROR_REPORT_COST))
        if sndbuf:
            window_bytes = max(1, min(window_bytes, sndbuf - 64))
        self.window_msgs = window_msgs
        self.window_bytes = window_bytes
        if family is None:
            try:
                family = self._resolve_family()
            except BaseException:
                self.close()
                raise
        self.family = family

    # -- plumbing -----------------------------------------------------------

    def _set_timeout(self) -> None:
        """The kernel's own receive timeout (SO_RCVTIMEO) on a real socket: a
        Python-level timeout would cost a poll() before every receive (one
        syscall per dump part, which under User-Mode Linux is ~25% of reading
        a big dump).  A blocking socket's receive then fails with EAGAIN only
        when the time is up."""
        self._kernel_timeout = False
        if isinstance(self.sock, socket.socket):
            if self.timeout is not None:
                sec = int(self.timeout)
                usec = max(int((self.timeout - sec) * 1e6), 0 if sec else 1)  # 0 would mean "forever"
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", sec, usec))
                self._kernel_timeout = True
            return
        settimeout = getattr(self.sock, "settimeout", None)  # a test's fake socket
        if settimeout is not None:
            settimeout(self.timeout)

    def reset(self) -> None:
        """Replace the socket after lost or garbled replies: whatever is still
        queued on it, or still to come (a dump goes on running), belongs to
        an exchange that was given up."""
        if self._factory is None:
            return
        old, self.sock = self.sock, None
        if old is not None:
            old.close()
        self.sock = self._factory()
        self._set_timeout()

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def next_seq(self, count: int = 1) -> int:
        """Reserve ``count`` consecutive sequence numbers; return the first."""
        first = (self._seq + 1) & _SEQ_MASK
        self._seq = (self._seq + count) & _SEQ_MASK
        return first

    def recv(self, op: str = "") -> bytes:
        """One datagram; RepliesLost, NetlinkTimeout or KernelError(errno)."""
        deadline = None
        while True:
            try:
                n = self.sock.recv_into(self._rbuf, len(self._rbuf), socket.MSG_TRUNC)
                break
            except InterruptedError:
                continue  # a signal whose handler returned (PEP 475 covers most)
            except BlockingIOError:
                if self._kernel_timeout:  # SO_RCVTIMEO ran out
                    raise NetlinkTimeout(op, self.timeout) from None
                # Woken with nothing to read: wait again, within the timeout.
                now = time.monotonic()
                if deadline is None:
                    deadline = now + (self.timeout if self.timeout is not None else float("inf"))
                if now >= deadline:
                    raise NetlinkTimeout(op, self.timeout) from None
                time.sleep(0.001)
            except TimeoutError:
                raise NetlinkTimeout(op, self.timeout) from None
            except OSError as e:
                if e.errno == _errno.ENOBUFS:
                    raise RepliesLost(op, "receive buffer overrun") from None
                raise KernelError(e.errno or _errno.EIO, op) from None
        if n > len(self._rbuf):
            # Cut to the buffer: lost.  The next one of this size fits.
            if n <= RECV_BUFSIZE_MAX:
                self._rbuf = bytearray(max(n, 2 * len(self._rbuf)))
            raise RepliesLost(op, f"a reply of {n} bytes was cut")
        return bytes(memoryview(self._rbuf)[:n])

    def send(self, buf, op: str = "") -> None:
        """Send ``buf`` (whole messages) in one datagram; NetlinkTimeout or KernelError(errno)."""
        while True:
            try:
                n = self.sock.send(buf)
                break
            except InterruptedError:
                continue
            except TimeoutError:
                raise NetlinkTimeout(op, self.timeout) from None
            except OSError as e:
                raise KernelError(e.errno or _errno.EIO, op) from None
        if n != len(buf):  # pragma: no cover - netlink sends are atomic
            raise KernelError(_errno.EMSGSIZE, op)

    def messages(self, chunk: bytes, op: str):
        """wire.iter_messages, a malformed datagram raising MalformedReply."""
        try:
            yield from wire.iter_messages(chunk)
        except wire.DecodeError as e:
            raise MalformedReply(op, str(e)) from None

    @staticmethod
    def _error_of(payload, op: str) -> int:
        try:
            return wire.decode_error(payload)[0]
        except wire.DecodeError as e:
            raise MalformedReply(op, str(e)) from None

    def _resolve_family(self) -> int:
        key = self.netns
        fam = _FAMILY_IDS.get(key)
        if fam is not None:
            return fam
        for attempt in (0, 1):
            try:
                replies = self.request(wire.encode_get_family(), "init", idempotent=True)
            except KernelError as e:
                if e.errno != _errno.ENOENT:
                    raise
                if attempt == 0:
                    _modprobe_ipvs()
                    continue
                raise IPVSUnavailable("init") from None
            for payload in replies:
                fam = wire.decode_family_id(payload)
                _FAMILY_IDS[key] = fam
                return fam
        raise IPVSUnavailable("init")

    # -- one request --------------------------------------------------------

    def request(self, msg: bytes, op: str = "", *, idempotent: bool = False) -> list[memoryview]:
        """Send ``msg``; return the payloads it was answered with, or raise KernelError.

        The request goes without NLM_F_ACK, followed in the same send by a
        barrier (see ``wire.encode_barrier``) whose ACK ends the exchange:
        an error report for the request arrives before it, and so do any
        replies.  No report means success.  Replies lost or malformed: a
        read (``idempotent``) is asked again, a change raises (its outcome
        is unknown).
        """
        attempts = READ_ATTEMPTS if idempotent else 1
        for attempt in range(attempts):
            try:
                return self._exchange(msg, op)
            except (RepliesLost, MalformedReply):
                self.reset()
                if attempt + 1 == attempts:
                    raise
            except NetlinkTimeout:
                self.reset()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(self, msg: bytes, op: str) -> list[memoryview]:
        seq = self.next_seq(2)
        barrier = (seq + 1) & _SEQ_MASK
        buf = bytearray(msg)
        wire.FLAGS_SEQ.pack_into(buf, wire.FLAGS_SEQ_OFFSET, C.NLM_F_REQUEST, seq)
        buf += wire.encode_barrier(barrier)
        self.send(buf, op)
        replies: list[memoryview] = []
        error = 0
        while True:
            for mtype, _flags, mseq, payload in self.messages(self.recv(op), op):
                if mseq == barrier and mtype == C.NLMSG_ERROR:
                    if error:
                        raise KernelError(error, op)
                    return replies
                if mseq != seq:
                    continue  # left over from an earlier, abandoned exchange
                if mtype == C.NLMSG_ERROR:
                    error = self._error_of(payload, op)
                elif mtype >= C.NLMSG_MIN_TYPE:
                    replies.append(payload)

    # -- pipelined batches ----------------------------------------------------

    def batch(self, msgs: Sequence[bytes]) -> dict[int, int]:
        """Apply ``msgs`` in order, pipelined; return {index: errno} of the failures."""
        if not msgs:
            return {}
        from array import array
        from itertools import accumulate

        return self.send_packed(b"".join(msgs), array("L", accumulate(map(len, msgs))))[0]

    def send_packed(self, data, ends, start: int = 0, stop: int | None = None,
                    should_stop=None) -> tuple[dict[int, int], int]:
        """Apply messages [start, stop) of ``data`` in order, pipelined: message
        k is ``data[ends[k-1]:ends[k]]`` (from 0 for the first).  Returns
        ({index: errno} of the failures, the index of the first message not
        sent).

        ``should_stop()`` is asked before each window; once it is true,
        nothing more is sent.  The kernel runs a whole window inside the one
        send, so every window sent is read to its barrier first and the
        boundary is exact: before the returned index every message has its
        outcome, from it on none was sent.  With ``should_stop``, SIGINT and
        SIGTERM are blocked during each send: a handler may then only run
        between windows, and no kernel call can see a signal pending (an
        interruptible wait there would end its message with -EINTR, which
        netlink answers with no report at all, i.e. as if it succeeded).

        A fault that ends the conversation raises BatchBroken: the messages
        of the window it hit are of unknown outcome."""
        from bisect import bisect_right

        stop = len(ends) if stop is None else stop
        errors: dict[int, int] = {}
        if start >= stop:
            return errors, start
        base = (self.next_seq(stop - start) - start) & _SEQ_MASK  # message k has seq base + k
        view = memoryview(data)
        pack_into = wire.FLAGS_SEQ.pack_into
        off_fs = wire.FLAGS_SEQ_OFFSET
        request_flag = C.NLM_F_REQUEST
        max_bytes = self.window_bytes - wire.BARRIER_LEN
        max_msgs = self.window_msgs
        i = start
        while i < stop:
            if should_stop is not None and should_stop():
                return errors, i
            first = ends[i - 1] if i else 0
            j = min(stop, i + max_msgs)
            if ends[j - 1] - first > max_bytes:
                j = max(i + 1, bisect_right(ends, first + max_bytes, i, j))
            buf = bytearray(view[first:ends[j - 1]])
            at = off_fs - first  # + where message k starts in data: its flags and seq in buf
            prev = first
            for k in range(i, j):
                pack_into(buf, prev + at, request_flag, (base + k) & _SEQ_MASK)
                prev = ends[k]
            barrier = self.next_seq()
            buf += wire.encode_barrier(barrier)
            try:
                if should_stop is None:
                    self.send(buf, "batch")
                else:
                    mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, _STOP_SIGNALS)
                    try:
                        self.send(buf, "batch")
                    finally:
                        _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)
                self._collect(base, start, j, barrier, errors, i)
            except KernelError as e:
                raise BatchBroken(e, i, j, errors) from None
            i = j
        return errors, stop

    def _collect(self, base: int, lo: int, stop: int, barrier: int, errors: dict[int, int],
                 start: int) -> None:
        """Read the error reports of messages [start, stop) up to the barrier's ACK
        (message k has seq base + k; a late report of an earlier window of the
        same batch, lo <= k < start, still counts).

        Reports lost or garbled: every request of the window without a report
        gets ENOBUFS (its outcome is unknown), the socket is replaced, and
        the caller goes on with the next window.  A report of an earlier
        window of the same batch that comes late still counts."""
        nlmsg_error = C.NLMSG_ERROR
        try:
            while True:
                for mtype, _flags, mseq, payload in self.messages(self.recv("batch"), "batch"):
                    if mtype != nlmsg_error:
                        continue
                    if mseq == barrier:
                        return
                    idx = (mseq - base) & _SEQ_MASK
                    if not lo <= idx < stop:
                        continue  # stale: of another exchange
                    err = self._error_of(payload, "batch")
                    if err:
                        errors[idx] = err
        except (RepliesLost, MalformedReply):
            self.reset()
            for idx in range(start, stop):
                errors.setdefault(idx, _errno.ENOBUFS)
        except NetlinkTimeout:
            self.reset()
            raise
