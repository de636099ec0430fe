"""The netlink transport against a fake socket that behaves like the kernel.

The fake follows netlink_rcv_skb's contract (what the kernel tier proves on
a real kernel): every message of one send is processed in order; a message
gets an NLMSG_ERROR when it fails (error < 0) or asked for NLM_F_ACK (error
0), except that a handler returning -EINTR gets neither; control messages
(NLMSG_NOOP, our barrier) are acked without reaching any handler; with
NETLINK_CAP_ACK the report echoes only the request's header.  Here
we check what is ours: sequence numbers, windows, ACK placement, mapping of
errors back to request indices, dumps and their draining, family resolution.
"""

from __future__ import annotations

import errno
import signal
import struct

import _signal
import pytest

from ipvsctl.backend import OP_ADD_DEST, OP_DEL_SERVICE, KernelError, Request
from ipvsctl.model import AF_INET, IPPROTO_TCP, Daemon, Destination, Service, ServiceKey
from ipvsctl.netlink import decode, encode, wire
from ipvsctl.netlink.codec import Codec
from ipvsctl.netlink import constants as C
from ipvsctl.netlink import netns
from ipvsctl.netlink import transport as T
from ipvsctl.netlink import dumps as D
from ipvsctl.netlink.consistency import DumpShape
from ipvsctl.netlink.backend import NetlinkBackend
from support import fake_ipvs as fake
from support.fake_ipvs import (KernelSocket, ScriptedKernel, Table, backend_over, dumps, error_report, nlmsg,
                               transport)
from support.kernel_entries import FAMILY, kernel_dest_entry

CODEC = Codec()  # one backend's memos (learned layouts), shared as a dump's entries share them

def msg_seq_flags(raw: bytes):
    """(flags, seq) of the real requests in one send (the barrier left out)."""
    return [(f, s) for t, f, s, _p in wire.iter_messages(raw) if t != C.NLMSG_NOOP]


def ends_with_barrier(raw: bytes) -> bool:
    *_, (t, f, _s, p) = wire.iter_messages(raw)
    return t == C.NLMSG_NOOP and f == C.NLM_F_REQUEST | C.NLM_F_ACK and len(p) == 0


KEY = ServiceKey(AF_INET, IPPROTO_TCP, "10.0.0.1", 80)


def dest_msgs(n: int) -> list[bytes]:
    return [
        encode.encode_new_dest(FAMILY, KEY, Destination(AF_INET, f"10.1.{i // 250}.{i % 250 + 1}", 80))
        for i in range(n)
    ]


def dest_index(msg: bytes) -> int:
    """Which of dest_msgs() a message is (from its address)."""
    d = CODEC.dest(msg[16:])
    _, _, a, b = map(int, d.addr.split("."))
    return a * 250 + b - 1


# ---------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------


def test_batch_maps_errors_to_request_indices_across_windows():
    failing = {0, 3, 4, 99, 100, 101, 250, 999}
    k = ScriptedKernel(lambda cmd, msg: (errno.EEXIST if dest_index(msg) in failing else 0, []))
    t = transport(k, window_msgs=100)
    errs = t.batch(dest_msgs(1000))
    assert errs == {i: errno.EEXIST for i in failing}
    assert len(k.sent) == 10


def test_batch_windows_end_with_a_barrier_and_ask_no_other_ack():
    k = ScriptedKernel()
    t = transport(k, window_msgs=7)
    assert t.batch(dest_msgs(20)) == {}
    sizes = []
    seqs = []
    for raw in k.sent:
        fs = msg_seq_flags(raw)
        sizes.append(len(fs))
        assert [f for f, _s in fs] == [C.NLM_F_REQUEST] * len(fs)
        assert ends_with_barrier(raw)
        seqs += [s for _f, s in fs]
    assert sizes == [7, 7, 6]
    # Consecutive, unique sequence numbers, one per request.
    assert seqs == list(range(seqs[0], seqs[0] + 20))
    assert not k.queue  # every report and ack was read


def test_a_request_the_kernel_never_acks_does_not_hang():
    # A handler returning -EINTR gets no ACK and no error report (the kernel
    # does that for a sync daemon stopped before its thread ran): it is a
    # success, and the barrier still ends the exchange.
    k = ScriptedKernel(lambda cmd, msg: (errno.EINTR, []))
    t = transport(k, window_msgs=3)
    assert t.batch(dest_msgs(6)) == {}
    assert t.request(encode.encode_del_daemon(FAMILY, Daemon(1)), "stop_daemon") == []
    assert not k.queue


def test_batch_windows_are_bounded_in_bytes():
    msgs = dest_msgs(50)
    k = ScriptedKernel()
    t = transport(k, window_bytes=len(msgs[0]) * 8 + 10)
    t.batch(msgs)
    assert [len(msg_seq_flags(raw)) for raw in k.sent] == [7] * 7 + [1]
    assert all(len(raw) <= t.window_bytes for raw in k.sent)  # barrier included


def test_window_follows_the_receive_buffer():
    # Even a window where every request fails must fit its error reports.
    t = transport(ScriptedKernel(rcvbuf=100 * T.ERROR_REPORT_COST), window_msgs=5000)
    assert t.window_msgs == 100
    t = transport(ScriptedKernel(sndbuf=10_000), window_bytes=1 << 20)
    assert t.window_bytes < 10_000 - 32


def test_every_request_failing_is_reported():
    k = ScriptedKernel(lambda cmd, msg: (errno.ESRCH, []))
    t = transport(k, window_msgs=64)
    assert t.batch(dest_msgs(300)) == {i: errno.ESRCH for i in range(300)}


def test_failure_of_the_last_message_of_a_window_is_reported():
    k = ScriptedKernel(lambda cmd, msg: (errno.ENOENT if dest_index(msg) == 9 else 0, []))
    t = transport(k, window_msgs=10)
    assert t.batch(dest_msgs(20)) == {9: errno.ENOENT}


def test_stale_reports_are_ignored():
    k = ScriptedKernel(lambda cmd, msg: (errno.EEXIST if dest_index(msg) == 1 else 0, []))
    t = transport(k)
    # A report left over from an earlier exchange, with a foreign seq.
    k.queue.append(error_report(wire.NLMSGHDR.pack(36, FAMILY, 1, 999_999, 0), -errno.EINVAL))
    assert t.batch(dest_msgs(3)) == {1: errno.EEXIST}


def test_sequence_numbers_wrap():
    k = ScriptedKernel(lambda cmd, msg: (errno.EEXIST if dest_index(msg) in (1, 3) else 0, []))
    t = transport(k, window_msgs=2)
    t._seq = 0xFFFFFFFF - 2
    assert t.batch(dest_msgs(6)) == {1: errno.EEXIST, 3: errno.EEXIST}


def test_lost_reports_are_not_guessed():
    # The first window's reports are lost (ENOBUFS): each of its requests is
    # reported as of unknown outcome, and the batch goes on with the next.
    def handler(cmd, msg):
        return errno.EEXIST if dest_index(msg) in (2, 7) else 0, []

    k = ScriptedKernel(handler)
    fresh = []

    def new_socket():  # what the transport opens in place of the overrun one
        fresh.append(ScriptedKernel(handler))
        return fresh[-1]

    t = transport(k, window_msgs=5, sock_factory=new_socket)
    k.overrun = True
    got = t.batch(dest_msgs(10))
    assert got == {0: errno.ENOBUFS, 1: errno.ENOBUFS, 2: errno.ENOBUFS, 3: errno.ENOBUFS,
                   4: errno.ENOBUFS, 7: errno.EEXIST}
    assert k.closed and len(fresh) == 1 and t.sock is fresh[0]


def test_empty_batch_sends_nothing():
    k = ScriptedKernel()
    assert transport(k).batch([]) == {}
    assert k.sent == []


# ---------------------------------------------------------------------------
# single requests and dumps
# ---------------------------------------------------------------------------


def test_request_returns_replies_and_raises_kernel_errors():
    def handler(cmd, msg):
        if cmd == C.IPVS_CMD_GET_INFO:
            return 0, [b"\x0e\x01\x00\x00" + wire.nla_u32(1, 0x010201) + wire.nla_u32(2, 4096)]
        return errno.ESRCH, []

    k = ScriptedKernel(handler)
    t = transport(k)
    (reply,) = t.request(encode.encode_get_info(FAMILY), "get_info")
    assert decode.decode_info(reply).conn_tab_size == 4096
    with pytest.raises(KernelError) as e:
        t.request(encode.encode_del_service(FAMILY, KEY), OP_DEL_SERVICE)
    assert (e.value.errno, e.value.op) == (errno.ESRCH, OP_DEL_SERVICE)
    # Each request went alone, without NLM_F_ACK, followed by a barrier.
    flags_seqs = [msg_seq_flags(raw)[0] for raw in k.sent]
    assert all(f == C.NLM_F_REQUEST for f, _ in flags_seqs)
    assert all(ends_with_barrier(raw) for raw in k.sent)
    assert len({s for _, s in flags_seqs}) == 2


def entries(n: int) -> list[bytes]:
    return [b"\x05\x01\x00\x00" + wire.nla_u32(99, i) for i in range(n)]


def test_dump_yields_every_entry_over_several_datagrams():
    k = ScriptedKernel(lambda cmd, msg: (0, entries(5), False))
    d = dumps(k)
    got = [bytes(p) for p in d.dump(encode.encode_dump_services(FAMILY))]
    assert got == entries(5)
    ((flags, _),) = msg_seq_flags(k.sent[0])
    assert flags == C.NLM_F_REQUEST | C.NLM_F_DUMP
    assert not k.queue


def test_interrupted_dump_is_read_to_its_end_then_reported():
    k = ScriptedKernel(lambda cmd, msg: (0, entries(5), True))
    d = dumps(k)
    got = []
    with pytest.raises(D.DumpInterrupted):
        for p in d.dump(encode.encode_dump_services(FAMILY), "get_services"):
            got.append(p)
    assert len(got) == 5 and not k.queue


def test_abandoned_dump_is_drained():
    k = ScriptedKernel(lambda cmd, msg: (0, entries(9), False))
    d = dumps(k)
    it = d.dump(encode.encode_dump_services(FAMILY))
    next(it)
    it.close()
    assert not k.queue


def test_dump_errors_are_raised():
    k = ScriptedKernel(lambda cmd, msg: (errno.EPERM, [], False))
    with pytest.raises(KernelError) as e:
        list(dumps(k).dump(encode.encode_dump_services(FAMILY), "get_services"))
    assert (e.value.errno, e.value.op) == (errno.EPERM, "get_services")


# ---------------------------------------------------------------------------
# family resolution, namespaces
# ---------------------------------------------------------------------------


def family_reply(fid: int) -> bytes:
    return bytes([C.CTRL_CMD_NEWFAMILY, 2, 0, 0]) + wire.nla_u16(C.CTRL_ATTR_FAMILY_ID, fid)


def test_family_is_resolved_once_per_namespace(monkeypatch):
    monkeypatch.setattr(T, "_FAMILY_IDS", {})
    k = ScriptedKernel(lambda cmd, msg: (0, [family_reply(0x33)]))
    assert T.Transport(sock=k).family == 0x33
    assert T.Transport(sock=ScriptedKernel()).family == 0x33  # cached: no request
    assert len(k.sent) == 1
    ((mtype, _f, _s, p), _barrier) = list(wire.iter_messages(k.sent[0]))
    assert mtype == C.GENL_ID_CTRL and p[0] == C.CTRL_CMD_GETFAMILY


def test_missing_ipvs_tries_modprobe_once_then_says_unavailable(monkeypatch, mocker):
    monkeypatch.setattr(T, "_FAMILY_IDS", {})
    monkeypatch.setattr(T, "_MODPROBE_TRIED", False)
    run = mocker.patch("subprocess.run")
    k = ScriptedKernel(lambda cmd, msg: (errno.ENOENT, []))
    with pytest.raises(T.IPVSUnavailable) as e:
        T.Transport(sock=k)
    assert e.value.errno == errno.ENOPROTOOPT and isinstance(e.value, KernelError)
    assert len(k.sent) == 2 and k.closed
    with pytest.raises(T.IPVSUnavailable):
        T.Transport(sock=ScriptedKernel(lambda cmd, msg: (errno.ENOENT, [])))
    assert run.call_count <= 1
    if run.call_count:
        assert run.call_args.args[0][1:] == ["-q", "ip_vs"]


def test_modprobe_that_loads_ipvs_is_followed_by_a_retry(monkeypatch, mocker):
    monkeypatch.setattr(T, "_FAMILY_IDS", {})
    monkeypatch.setattr(T, "_MODPROBE_TRIED", False)
    answers = iter([(errno.ENOENT, []), (0, [family_reply(0x2B)])])
    mocker.patch("subprocess.run")
    assert T.Transport(sock=ScriptedKernel(lambda cmd, msg: next(answers))).family == 0x2B


def test_missing_namespace_is_a_clear_error():
    with pytest.raises(netns.NetnsNotFound) as e:
        T.Transport("ipvsctl-no-such-namespace-xyz")
    assert isinstance(e.value, FileNotFoundError)
    assert e.value.name == "ipvsctl-no-such-namespace-xyz"
    assert "ipvsctl-no-such-namespace-xyz" in str(e.value)
    assert netns.netns_path("blue") == "/run/netns/blue"
    assert netns.netns_path("/proc/1/ns/net") == "/proc/1/ns/net"


# ---------------------------------------------------------------------------
# the backend's bulk path over the fake
# ---------------------------------------------------------------------------


def test_apply_many_reports_kernel_errors_with_the_request_op():
    failing = {2, 5}
    k = ScriptedKernel(lambda cmd, msg: (errno.EEXIST if cmd == C.IPVS_CMD_NEW_DEST and dest_index(msg) in failing else 0, []))
    b = NetlinkBackend(transport=transport(k, window_msgs=3))
    reqs = [Request(OP_ADD_DEST, KEY, Destination(AF_INET, f"10.1.0.{i + 1}", 80)) for i in range(8)]
    errs = b.apply_many(iter(reqs))
    assert sorted(errs) == [2, 5]
    assert all(e.errno == errno.EEXIST and e.op == OP_ADD_DEST for e in errs.values())


def test_apply_many_sends_nothing_when_a_request_is_malformed():
    k = ScriptedKernel()
    b = NetlinkBackend(transport=transport(k))
    reqs = [
        Request("add_service", Service(KEY)),
        Request(OP_ADD_DEST, KEY, Destination(AF_INET, "not-an-address", 80)),
    ]
    with pytest.raises(ValueError):
        b.apply_many(reqs)
    with pytest.raises(ValueError):
        b.apply_many([Request(OP_ADD_DEST, KEY, Destination(AF_INET, "10.0.0.1", 70000))])
    with pytest.raises(ValueError):
        b.apply_many([Request("add_service", KEY)])  # a key is not a full service
    assert k.sent == []


def test_the_netlink_backend_imports_nothing_heavy():
    import subprocess
    import sys

    code = (
        "import sys, ipvsctl.netlink.backend as b; "
        "print(' '.join(m for m in ('pyroute2', 'json', 'rich', 'ctypes', 'subprocess', 'click') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_signals_are_blocked_while_a_window_is_sent():
    """So that no kernel call sees a signal pending, and the window is whole."""
    from support.signalling import lines

    seen = []

    class Watching(KernelSocket):
        def send(self, buf):
            seen.append(signal.SIGTERM in _signal.pthread_sigmask(_signal.SIG_BLOCK, []))
            return KernelSocket.send(self, buf)

    table = Table()
    backend, _, _ = backend_over(table)
    backend._t.sock = Watching(table)
    from ipvsctl.fastline import request

    batch = backend.batch()
    for line in lines(1200):
        batch.add(request(line.split()))
    assert batch.send(0, 600, lambda: False) == ({}, 600)
    assert batch.send(600, 1200) == ({}, 1200)  # nobody to stop: nothing blocked
    assert seen == [True, True, False, False]
    assert signal.SIGTERM not in _signal.pthread_sigmask(_signal.SIG_BLOCK, [])  # unblocked after


# ---------------------------------------------------------------------------
# dump_small: a small dump read lean, any other handed to the general reader
# ---------------------------------------------------------------------------

DEST_ENTRY = 356  # a real-server dump message as kernel_dest_entry makes it, header included


def reals_table(n: int, key: ServiceKey = KEY) -> Table:
    t = Table()
    t.add_service(Service(key, "rr"))
    for i in range(n):
        t.add_dest(key, Destination(AF_INET, f"10.1.{i // 250}.{i % 250 + 1}", 80 + i % 3, weight=i % 7))
    return t


def payloads_of(got) -> list[bytes]:
    """The entries of what dump_small returned (one run, or the runs of its
    iterator), read to the end."""
    runs = [got] if isinstance(got, bytes) else list(got)
    return [bytes(p) for run in runs for *_x, p in wire.iter_messages(run)]


def dumped_by_runs(table: Table, key: ServiceKey = KEY, **kw) -> tuple[list[bytes], list[int]]:
    """(entries, part sizes) of the same dump read by dump_runs, on a fresh transport."""
    backend, _, _ = backend_over(table, **kw)
    d = backend._dumps
    got = [bytes(p) for run in d.dump_runs(encode.encode_dump_dests(FAMILY, key), "get_dests")
           for *_x, p in wire.iter_messages(run)]
    return got, d.dump_shape.sizes


def not_one_pass() -> DumpShape:
    shape = DumpShape()
    shape.part(3000, 356)
    shape.part(3000, 356)
    return shape


@pytest.mark.parametrize("n", [1, 3, 7])
def test_dump_small_returns_a_one_pass_dump_as_one_run(n):
    table = reals_table(n)
    backend, sock, _ = backend_over(table)
    d = backend._dumps
    d.dump_shape = not_one_pass()  # the last dump's: dump_small must say its own
    got = d.dump_small(encode.encode_dump_dests(FAMILY, KEY), "get_dests")
    assert type(got) is bytes and len(got) == n * DEST_ENTRY
    assert payloads_of(got) == [kernel_dest_entry(d) for d in table.dests[KEY]]
    ((_t, _f, seq, _p),) = list(wire.iter_messages(sock.sent[-1]))
    assert {s for _t, _f, s, _p in wire.iter_messages(got)} == {seq}  # this dump's, headers included
    assert d.dump_shape.one_pass and d.dump_shape.sizes == [n * DEST_ENTRY]
    assert not sock.queue and sock.dump is None  # its NLMSG_DONE was read: nothing left behind
    assert payloads_of(d.dump_small(encode.encode_dump_dests(FAMILY, KEY))) == payloads_of(got)


@pytest.mark.parametrize("exists", [True, False], ids=["no real servers", "no such service"])
def test_dump_small_of_an_empty_dump_is_empty_bytes_in_one_pass(exists):
    table = reals_table(0) if exists else Table()
    backend, sock, _ = backend_over(table)
    d = backend._dumps
    d.dump_shape = not_one_pass()
    assert d.dump_small(encode.encode_dump_dests(FAMILY, KEY), "get_dests") == b""
    assert d.dump_shape.one_pass and d.dump_shape.parts == 0
    assert not sock.queue and sock.dump is None


@pytest.mark.parametrize("n, part_bytes", [
    (8, fake.GOODSIZE),  # one part that may have been full, then the end
    (10, fake.GOODSIZE),  # one full part, then the end
    (11, fake.GOODSIZE),  # a full part, then one more entry
    (300, fake.GOODSIZE),  # many parts
    (5, 2 * DEST_ENTRY),  # one-pass-sized parts, each followed by another, not by the end
    (2, DEST_ENTRY),  # the same, one entry each
], ids=["8-maybe-full", "10-full", "11", "300", "5-in-small-parts", "2-in-two-parts"])
def test_dump_small_hands_any_other_dump_to_the_general_reader(n, part_bytes):
    table = reals_table(n)
    backend, sock, _ = backend_over(table, part_bytes=part_bytes)
    d = backend._dumps
    got = d.dump_small(encode.encode_dump_dests(FAMILY, KEY), "get_dests")
    assert not isinstance(got, (bytes, bytearray, memoryview))
    entries = payloads_of(got)  # nothing lost, nothing read twice
    want, sizes = dumped_by_runs(table, part_bytes=part_bytes)
    assert entries == want == [kernel_dest_entry(d) for d in table.dests[KEY]]
    assert d.dump_shape.sizes == sizes and not d.dump_shape.one_pass
    assert not sock.queue and sock.dump is None


class PartsKernel(ScriptedKernel):
    """Answers a dump with the datagrams ``parts(seq)`` gives, as they are
    (to flag, misnumber or end a dump as a test wants)."""

    def __init__(self, parts):
        super().__init__()
        self.parts = parts

    def dump_reply(self, seq, msg):
        self.queue.extend(self.parts(seq))


def datagram(seq: int, entries: list[bytes], flags: int = C.NLM_F_MULTI) -> bytes:
    return b"".join(nlmsg(FAMILY, flags, seq, e) for e in entries)


def done(seq: int, err: int = 0, flags: int = C.NLM_F_MULTI) -> bytes:
    return nlmsg(C.NLMSG_DONE, flags, seq, struct.pack("=i", -err))


SMALL = [kernel_dest_entry(Destination(AF_INET, f"10.1.0.{i + 1}", 80)) for i in range(3)]
INTR = C.NLM_F_MULTI | C.NLM_F_DUMP_INTR


def outcome(got) -> tuple[list[bytes], type | None]:
    """(the entries yielded, the exception raised after them, if any)."""
    entries = []
    try:
        for run in ([got] if isinstance(got, bytes) else got):
            entries += [bytes(p) for *_x, p in wire.iter_messages(run)]
    except Exception as e:  # noqa: BLE001 - compared with dump_runs'
        return entries, type(e)
    return entries, None


def outcome_of_runs(parts) -> tuple[list[bytes], type | None]:
    return outcome(dumps(PartsKernel(parts)).dump_runs(encode.encode_dump_dests(FAMILY, KEY), "get_dests"))


@pytest.mark.parametrize("name, parts", [
    ("entries flagged", lambda s: [datagram(s, SMALL, INTR), done(s)]),
    ("one entry flagged", lambda s: [datagram(s, SMALL[:2]) + datagram(s, SMALL[2:], INTR), done(s)]),
    ("the end flagged", lambda s: [datagram(s, SMALL), done(s, flags=INTR)]),
    ("an empty dump's end flagged", lambda s: [done(s, flags=INTR)]),
])
def test_dump_small_leaves_a_flagged_dump_to_the_general_reader(name, parts):
    """NLM_F_DUMP_INTR anywhere: not taken as one run; the general reader
    says what it says of it (DumpInterrupted after the entries, for a
    flagged entry or a flagged end alike), every entry yielded, the dump
    read to its end."""
    k = PartsKernel(parts)
    got = dumps(k).dump_small(encode.encode_dump_dests(FAMILY, KEY), "get_dests")
    assert not isinstance(got, bytes)
    entries, raised = outcome(got)
    assert (entries, raised) == outcome_of_runs(parts)
    assert entries == (SMALL if "empty" not in name else [])
    assert raised is D.DumpInterrupted
    assert not k.queue


@pytest.mark.parametrize("name, parts", [
    ("an end of its own", lambda s: [datagram(s, SMALL), done(s, flags=INTR)]),
    ("the end in the entries' datagram", lambda s: [datagram(s, SMALL) + done(s, flags=INTR)]),
    ("after several parts", lambda s: [datagram(s, SMALL[:1]), datagram(s, SMALL[1:]), done(s, flags=INTR)]),
    ("an empty dump's end", lambda s: [done(s, flags=INTR)]),
])
def test_a_dump_whose_end_alone_is_flagged_is_interrupted(name, parts):
    """netlink_dump checks a dump's consistency as it writes the NLMSG_DONE
    too (IPVS never flags a dump; generic netlink families with a
    generation number do): a flagged end is an interrupted dump, reported
    after every entry, as a flagged entry is.  (It was once taken for a
    clean end.)"""
    for read in ("dump", "dump_runs"):
        k = PartsKernel(parts)
        got = []
        with pytest.raises(D.DumpInterrupted) as e:
            for item in getattr(dumps(k), read)(encode.encode_dump_dests(FAMILY, KEY), "get_dests"):
                got.append(item)
        payloads = [bytes(p) for p in got] if read == "dump" else payloads_of(got)
        assert payloads == (SMALL if "empty" not in name else [])
        assert e.value.errno == errno.EINTR and e.value.op == "get_dests" and not k.queue


def test_a_flagged_end_that_carries_an_errno_raises_that_error():
    """The errno wins, as it does over a flagged entry followed by an error."""
    for flagged_entry in (False, True):
        parts = lambda s: [datagram(s, SMALL, INTR if flagged_entry else C.NLM_F_MULTI),  # noqa: E731
                           done(s, errno.ENOMEM, flags=INTR)]
        with pytest.raises(KernelError) as e:
            list(dumps(PartsKernel(parts)).dump(encode.encode_dump_dests(FAMILY, KEY), "get_dests"))
        assert type(e.value) is KernelError and e.value.errno == errno.ENOMEM


def test_a_flagged_end_marks_its_part_interrupted():
    seq = 5
    for chunk in (done(seq, flags=INTR), datagram(seq, SMALL) + done(seq, flags=INTR)):
        part = wire.dump_part(chunk, seq)
        assert part.interrupted and part.end == 0
    assert not wire.dump_part(done(seq), seq).interrupted
    assert not wire.dump_part(done(seq + 1, flags=INTR), seq).interrupted  # another dump's end


@pytest.mark.parametrize("name, parts", [
    ("a DONE carrying an errno", lambda s: [datagram(s, SMALL), done(s, errno.ENOMEM)]),
    ("an empty dump's DONE carrying an errno", lambda s: [done(s, errno.ENOMEM)]),
    ("an error report instead of the end", lambda s: [datagram(s, SMALL), error_report(
        wire.NLMSGHDR.pack(36, FAMILY, 0x301, s, 0), -errno.ENOMEM)]),
    ("an error report at once", lambda s: [error_report(wire.NLMSGHDR.pack(36, FAMILY, 0x301, s, 0),
                                                        -errno.EPERM)]),
])
def test_dump_small_leaves_a_failed_dump_to_the_general_reader(name, parts):
    k = PartsKernel(parts)
    got = dumps(k).dump_small(encode.encode_dump_dests(FAMILY, KEY), "get_dests")
    assert not isinstance(got, bytes)
    with pytest.raises(KernelError) as e:
        payloads_of(got)
    assert e.value.errno in (errno.ENOMEM, errno.EPERM) and e.value.op == "get_dests"
    assert outcome(dumps(PartsKernel(parts)).dump_small(encode.encode_dump_dests(FAMILY, KEY))) \
        == outcome_of_runs(parts)
    assert not k.queue


STALE = 999_999


@pytest.mark.parametrize("name, parts", [
    ("an old dump's end first", lambda s: [done(STALE), datagram(s, SMALL), done(s)]),
    ("an old dump's end before an empty one", lambda s: [done(STALE), done(s)]),
    ("an old dump's entries first", lambda s: [datagram(STALE, SMALL[:1]), datagram(s, SMALL), done(s)]),
    ("an old dump's end between", lambda s: [datagram(s, SMALL), done(STALE), done(s)]),
    ("an old dump's entries between", lambda s: [datagram(s, SMALL), datagram(STALE, SMALL[:2]), done(s)]),
    ("an old dump's entry in the same datagram", lambda s: [datagram(s, SMALL) + datagram(STALE, SMALL[:1]),
                                                            done(s)]),
    ("the end in the entries' datagram", lambda s: [datagram(s, SMALL) + done(s)]),
    ("an old report first", lambda s: [error_report(wire.NLMSGHDR.pack(36, FAMILY, 1, STALE, 0), -errno.EINVAL),
                                       datagram(s, SMALL), done(s)]),
])
def test_dump_small_skips_what_belongs_to_another_exchange(name, parts):
    """Only this dump's entries, up to its own end, and no further; what
    does not look like one small part and its end goes to the general reader."""
    k = PartsKernel(parts)
    d = dumps(k)
    got = d.dump_small(encode.encode_dump_dests(FAMILY, KEY), "get_dests")
    assert not isinstance(got, bytes) or "empty" in name
    want = [] if "empty" in name else SMALL
    assert payloads_of(got) == want
    assert outcome_of_runs(parts) == (want, None)
    assert not k.queue  # read up to this dump's own end, no further
    assert d.dump_shape.one_pass


LOST_OR_MALFORMED = [(fault, when) for fault in ("enobufs", "trunc", "bad_len")
                     for when in ("first part", "the end", "third part", "empty dump's end")]


@pytest.mark.parametrize("fault, when", LOST_OR_MALFORMED)
def test_dump_small_lost_or_malformed_replies_break_the_dump_on_a_fresh_socket(fault, when):
    n = {"first part": 3, "the end": 3, "third part": 40, "empty dump's end": 0}[when]
    table = reals_table(n)
    predicate = {"first part": fake.nth_part(1), "the end": fake.is_done, "third part": fake.nth_part(3),
                 "empty dump's end": fake.is_done}[when]
    faults = fake.Faults((predicate, fault))
    backend, _sock, _ = backend_over(table, faults=faults)
    d = backend._dumps
    with pytest.raises(D.DumpBroken):
        payloads_of(d.dump_small(encode.encode_dump_dests(FAMILY, KEY), "get_dests"))
    assert faults.fired == [fault]
    assert len(backend.sockets) == 2 and backend.sockets[0].closed and backend._t.sock is backend.sockets[1]
    # The fresh socket reads the next dump whole.
    assert payloads_of(d.dump_small(encode.encode_dump_dests(FAMILY, KEY))) == [
        kernel_dest_entry(d) for d in table.dests[KEY]]


@pytest.mark.parametrize("n", [0, 3])
def test_dump_small_times_out_on_a_fresh_socket(n):
    # The end is lost without a trace (dropped): nothing more comes.
    table = reals_table(n)
    backend, _sock, _ = backend_over(table, faults=fake.Faults((fake.is_done, "drop")), timeout=0.5)
    with pytest.raises(T.NetlinkTimeout):
        payloads_of(backend._dumps.dump_small(encode.encode_dump_dests(FAMILY, KEY), "get_dests"))
    assert len(backend.sockets) == 2 and backend.sockets[0].closed and backend._t.sock is backend.sockets[1]


def relength(message: bytes, length: int) -> bytes:
    return struct.pack("=I", length) + message[4:]


@pytest.mark.parametrize("name, parts", [
    ("an end", lambda s: [datagram(s, SMALL), relength(done(s), 24)]),
    ("an empty dump's end", lambda s: [relength(done(s), 24)]),
])
def test_dump_small_a_malformed_end_breaks_the_dump(name, parts):
    """An NLMSG_DONE whose header claims more bytes than the datagram holds
    is malformed, as dump_runs finds it: not the clean end of a small dump.
    (dump_small once looked only at the datagram's size.)"""
    assert outcome_of_runs(parts) == (SMALL if "empty" not in name else [], D.DumpBroken)
    with pytest.raises(D.DumpBroken):
        payloads_of(dumps(PartsKernel(parts)).dump_small(encode.encode_dump_dests(FAMILY, KEY), "get_dests"))
