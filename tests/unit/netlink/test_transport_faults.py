"""Netlink faults, injected between a fake IPVS and the transport (issue 13,
item 4): each ends in a correct retry or a clear error, never a wrong table
and never a traceback.

The fake (support.fake_ipvs.FaultySocket) dumps positionally, like the kernel; the
faults hit what the socket delivers: ENOBUFS, EINTR, EAGAIN, a datagram cut
by MSG_TRUNC, sequence numbers lost, repeated or out of order, an error in
the middle of a dump, error reports and messages with bad lengths, and a
kernel that never answers.
"""

from __future__ import annotations

import errno
import io

import pytest
from support.fake_ipvs import Faults, Table, backend_over, is_ack, is_done, is_dump_part, nth_part

from ipvsctl import cli, session
from ipvsctl.backend import OP_ADD_SERVICE, KernelError, Request
from ipvsctl.errors import kernel_message
from ipvsctl.model import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, Destination, Service, ServiceKey
from ipvsctl.netlink.transport import MalformedReply, NetlinkTimeout, RepliesLost

BIG = ServiceKey(AF_INET, IPPROTO_TCP, "10.0.0.1", 80)
SIX = ServiceKey(AF_INET6, IPPROTO_TCP, "fd00::1", 80)


def table() -> Table:
    """A big IPv4 service, an IPv6 one, and 30 small services: several dump
    parts of every kind."""
    t = Table()
    t.add_service(Service(BIG, "rr"))
    for i in range(120):
        t.add_dest(BIG, Destination(AF_INET, f"10.1.0.{i + 1}", 80))
    t.add_service(Service(SIX, "wrr"))
    for i in range(40):
        t.add_dest(SIX, Destination(AF_INET6, f"fd00:1::{i + 1:x}", 80))
    for i in range(30):
        k = ServiceKey(AF_INET, IPPROTO_UDP, f"10.3.0.{i + 1}", 53)
        t.add_service(Service(k, "rr"))
        t.add_dest(k, Destination(AF_INET, "10.4.0.1", 53))
    return t


def truth(t: Table) -> dict:
    return {s.key: sorted((d.af, d.addr, d.port) for d in t.dests[s.key]) for s in t.services}


def read(backend, counters: bool) -> dict:
    """The table, after one request (a GET) on the same conversation."""
    assert backend.service(BIG).key == BIG
    return {s.key: sorted((d.af, d.addr, d.port) for d in ds) for s, ds in backend.table(counters=counters)}


def over(faults: Faults, **kw):
    t = table()
    backend, _, _ = backend_over(t, faults=faults, **kw)
    return t, backend


# ---------------------------------------------------------------------------
# Faults a read gets over by reading again
# ---------------------------------------------------------------------------

RECOVERABLE = {
    # ENOBUFS: the kernel dropped a reply.  The dump is read again, on a fresh socket.
    "enobufs in a dump": lambda: Faults((nth_part(3), "enobufs")),
    "enobufs at a dump's end": lambda: Faults((is_done, "enobufs")),
    "enobufs on a read request's answer": lambda: Faults((is_ack, "enobufs")),
    # A signal whose handler returned, a wake-up with nothing to read.
    "eintr": lambda: Faults((lambda d, n: n % 3 == 0, "eintr", 20)),
    "eagain": lambda: Faults((lambda d, n: n % 4 == 1, "eagain", 20)),
    # A datagram longer than the buffer (MSG_TRUNC): the buffer grows, the dump is read again.
    "msg_trunc": lambda: Faults((nth_part(2), "trunc")),
    # Sequence numbers: a part repeated, parts out of order, a part lost with ENOBUFS.
    "part repeated": lambda: Faults((nth_part(2), "repeat"), (nth_part(7), "repeat")),
    "parts out of order": lambda: Faults((nth_part(2), "swap"), (nth_part(9), "swap")),
    # Malformed: an error report too short to read, a length beyond the datagram.
    "short error report at a dump's end": lambda: Faults((is_done, "short_error")),
    "message longer than its datagram": lambda: Faults((nth_part(4), "bad_len")),
}


@pytest.mark.parametrize("counters", [False, True], ids=["rows", "counters"])
@pytest.mark.parametrize("name", list(RECOVERABLE))
def test_a_read_gets_over_the_fault(name, counters):
    faults = RECOVERABLE[name]()
    t, backend = over(faults, timeout=5)
    got = read(backend, counters)
    assert faults.fired, "the fault never happened: this test would prove nothing"
    assert got == truth(t)
    assert backend._t.sock is backend.sockets[-1]


def test_a_lost_reply_replaces_the_socket():
    f = Faults((nth_part(2), "enobufs"))
    t, backend = over(f, timeout=5)
    assert read(backend, False) == truth(t)
    assert f.fired == ["enobufs"] and len(backend.sockets) == 2 and backend.sockets[0].closed


def test_replies_lost_on_every_attempt_say_so():
    f = Faults((is_dump_part, "enobufs", None))
    t, backend = over(f, timeout=5)
    with pytest.raises(RepliesLost) as e:
        backend.table(counters=False)
    assert e.value.errno == errno.ENOBUFS
    assert "lost" in kernel_message(e.value.op, e.value.errno)


def test_malformed_replies_on_every_attempt_say_so():
    f = Faults((is_dump_part, "bad_len", None))
    t, backend = over(f, timeout=5)
    with pytest.raises(MalformedReply) as e:
        backend.destinations(BIG)
    assert e.value.errno == errno.EPROTO and "malformed" in kernel_message(e.value.op, e.value.errno)


# ---------------------------------------------------------------------------
# Faults that end in a clear error
# ---------------------------------------------------------------------------


def test_an_error_in_the_middle_of_a_dump_is_reported():
    f = Faults((nth_part(2), "enomem"))
    t, backend = over(f, timeout=5)
    with pytest.raises(KernelError) as e:
        backend.destinations(BIG)
    assert e.value.errno == errno.ENOMEM and e.value.op == "get_dests"
    assert kernel_message(e.value.op, e.value.errno) == "Memory allocation problem"
    # The conversation is still usable afterwards.
    assert read(backend, False) == truth(t)


def test_a_lost_end_of_dump_times_out():
    f = Faults((is_done, "drop"))
    t, backend = over(f, timeout=0.05)
    with pytest.raises(NetlinkTimeout) as e:
        backend.table(counters=False)
    assert e.value.errno == errno.ETIMEDOUT and "did not answer in time" in kernel_message(e.value.op, e.value.errno)
    assert read(backend, False) == truth(t)  # a fresh socket afterwards


def test_a_lost_answer_to_a_request_times_out():
    f = Faults((is_ack, "drop"))
    t, backend = over(f, timeout=0.05)
    with pytest.raises(NetlinkTimeout):
        backend.service(BIG)


def test_eagain_for_ever_times_out():
    f = Faults((lambda d, n: True, "eagain", None))
    t, backend = over(f, timeout=0.05)
    with pytest.raises(NetlinkTimeout):
        backend.service(BIG)


def test_a_change_whose_answer_was_lost_is_of_unknown_outcome():
    # Never guessed: the change may or may not have been made.
    f = Faults((is_ack, "enobufs"))
    t, backend = over(f, timeout=5)
    with pytest.raises(RepliesLost) as e:
        backend.apply(Request(OP_ADD_SERVICE, Service(ServiceKey(AF_INET, IPPROTO_TCP, "10.9.9.9", 80))))
    assert "unknown" in kernel_message(e.value.op, e.value.errno)


def test_a_malformed_error_report_of_a_request_is_reported():
    f = Faults((is_ack, "short_error", None))
    t, backend = over(f, timeout=5)
    with pytest.raises(MalformedReply):
        backend.service(ServiceKey(AF_INET, IPPROTO_TCP, "10.9.9.9", 80))  # answered by an error report
    assert f.fired


def test_stale_replies_of_an_abandoned_exchange_are_skipped():
    # A read whose answer timed out leaves it on the old socket (given up);
    # on one kept socket, replies of an earlier sequence number are skipped.
    t = table()
    backend, sock, _ = backend_over(t)
    stale = backend._t.next_seq()
    from support.fake_ipvs import ack, nlmsg
    from ipvsctl.netlink import wire
    from ipvsctl.netlink import constants as C

    sock.queue.append(ack(wire.NLMSGHDR.pack(16, 0, 0, stale, 0), errno.EPERM))
    sock.queue.append(nlmsg(C.NLMSG_DONE, 2, stale, b"\0\0\0\0"))
    assert backend.service(BIG).key == BIG
    assert read(backend, True) == truth(t)


def new_services(n: int) -> list[Request]:
    return [Request(OP_ADD_SERVICE, Service(ServiceKey(AF_INET, IPPROTO_UDP, f"10.3.0.{i + 1}", 53), "rr"))
            for i in range(25, 25 + n)]  # 10.3.0.26 .. 30 exist already: EEXIST


def test_a_repeated_report_in_a_batch_counts_once():
    f = Faults((lambda d, n: is_ack(d) and d[16:20] == (-errno.EEXIST).to_bytes(4, "little", signed=True),
                "repeat"))
    t, backend = over(f, timeout=5)
    got = backend.apply_many(new_services(10))
    assert f.fired and {i: e.errno for i, e in got.items()} == {i: errno.EEXIST for i in range(5)}


def test_reports_lost_in_a_batch_are_never_guessed():
    # The third report is lost: the two before it are known; every other
    # request of the window is of unknown outcome (ENOBUFS), never "done".
    f = Faults((lambda d, n: is_ack(d) and n == 2, "enobufs"))
    t, backend = over(f, timeout=5)
    got = {i: e.errno for i, e in backend.apply_many(new_services(10)).items()}
    assert f.fired and got == {0: errno.EEXIST, 1: errno.EEXIST, **{i: errno.ENOBUFS for i in range(2, 10)}}
    status, out, err = run_cli(["-R"], Faults((lambda d, n: is_ack(d), "enobufs")),
                               stdin="-A -t 10.9.9.9:80\n-A -t 10.9.9.8:80\n")
    assert status == 255 and err.count("whether a change took effect is unknown") == 2


# ---------------------------------------------------------------------------
# On the command line: a message and an exit status, never a traceback
# ---------------------------------------------------------------------------


def run_cli(argv, faults: Faults, stdin: str = "", timeout: float = 5):
    t = table()
    backend, _, legacy = backend_over(t, faults=faults, timeout=timeout)
    out, err = io.StringIO(), io.StringIO()
    real = session.open_backend
    session.open_backend = lambda netns: backend
    try:
        status = cli.run_compat(argv, io.StringIO(stdin), out, err)
    finally:
        session.open_backend = real
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", [["-Ln"], ["-Sn"], ["-Ln", "--json"], ["-Ln", "--stats"]])
def test_listings_with_faults_on_every_attempt_fail_cleanly(argv):
    status, out, err = run_cli(argv, Faults((is_dump_part, "enobufs", None)))
    assert status != 0 and "Replies from the kernel were lost" in err
    assert "10.1.0." not in out


@pytest.mark.parametrize("argv", [["-Ln"], ["-Sn"], ["-Ln", "--json"]])
def test_listings_with_a_passing_fault_are_whole(argv):
    status, out, err = run_cli(argv, Faults((nth_part(2), "enobufs")))
    assert status == 0 and err == ""
    assert sum(line.count("10.1.0.") for line in out.splitlines()) == 120


def test_a_restore_whose_answer_never_comes_says_so():
    status, out, err = run_cli(["-R"], Faults((is_ack, "drop", None)), stdin="-A -t 10.9.9.9:80\n",
                               timeout=0.05)
    assert status == 255 and "did not answer in time" in err


# ---------------------------------------------------------------------------
# The receive timeout on a real socket (no IPVS needed to wait for nothing)
# ---------------------------------------------------------------------------


def test_a_real_socket_waits_no_longer_than_the_timeout():
    import time

    from ipvsctl.netlink import transport as T

    t = T.Transport(family=0x22, timeout=0.2)  # a real netlink socket; nothing will come
    try:
        started = time.monotonic()
        with pytest.raises(NetlinkTimeout) as e:
            t.recv("get_services")
        waited = time.monotonic() - started
    finally:
        t.close()
    assert 0.15 < waited < 5 and e.value.seconds == 0.2 and e.value.op == "get_services"


@pytest.mark.parametrize("value, seconds", [(None, 30.0), ("2.5", 2.5), ("0", None), ("-1", None),
                                            ("soon", 30.0)])
def test_the_timeout_comes_from_the_environment(monkeypatch, value, seconds):
    from ipvsctl.netlink import transport as T

    if value is None:
        monkeypatch.delenv("IPVSCTL_NETLINK_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("IPVSCTL_NETLINK_TIMEOUT", value)
    assert T.default_timeout() == seconds
