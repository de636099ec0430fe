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

import _signal
import pytest

from ipvsctl.backend import OP_ADD_DEST, OP_DEL_SERVICE, KernelError, Request
from ipvsctl.model import AF_INET, IPPROTO_TCP, Daemon, Destination, Service, ServiceKey
from ipvsctl.netlink import decode, encode, wire
from ipvsctl.netlink.codec import Codec
from ipvsctl.netlink import constants as C
from ipvsctl.netlink import netns
from ipvsctl.netlink import transport as T
from ipvsctl.netlink.backend import NetlinkBackend
from support.fake_ipvs import KernelSocket, ScriptedKernel, Table, backend_over, error_report, transport
from support.kernel_entries import FAMILY

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
    t = transport(k)
    got = [bytes(p) for p in t.dump(encode.encode_dump_services(FAMILY))]
    assert got == entries(5)
    ((flags, _),) = msg_seq_flags(k.sent[0])
    assert flags == C.NLM_F_REQUEST | C.NLM_F_DUMP
    assert not k.queue


def test_interrupted_dump_is_read_to_its_end_then_reported():
    k = ScriptedKernel(lambda cmd, msg: (0, entries(5), True))
    t = transport(k)
    got = []
    with pytest.raises(T.DumpInterrupted):
        for p in t.dump(encode.encode_dump_services(FAMILY), "get_services"):
            got.append(p)
    assert len(got) == 5 and not k.queue


def test_abandoned_dump_is_drained():
    k = ScriptedKernel(lambda cmd, msg: (0, entries(9), False))
    t = transport(k)
    it = t.dump(encode.encode_dump_services(FAMILY))
    next(it)
    it.close()
    assert not k.queue


def test_dump_errors_are_raised():
    k = ScriptedKernel(lambda cmd, msg: (errno.EPERM, [], False))
    with pytest.raises(KernelError) as e:
        list(transport(k).dump(encode.encode_dump_services(FAMILY), "get_services"))
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
