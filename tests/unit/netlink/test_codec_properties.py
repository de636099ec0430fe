"""Properties of the netlink codec (ipvsctl/netlink/: wire, encode, decode, layouts) and of the
transport's parsing of what the kernel sends:

* every model value survives encode -> decode;
* the fast decoders (learned layouts, the columnar run decoder) give what the
  generic attribute walker gives, on generated entries and on the real
  kernel's entries recorded in tests/data/golden/;
* any bytes handed to a decoder, or received by the transport, give a value
  or a clear error (DecodeError, KernelError), never another exception.
"""

from __future__ import annotations

import struct

from hypothesis import example, given
from hypothesis import strategies as st

from support.golden import Golden, golden_files, messages

from ipvsctl import model as m
from ipvsctl.backend import KernelError
from ipvsctl.netlink import decode, encode, wire
from ipvsctl.netlink.codec import Codec
from ipvsctl.netlink import constants as C
from ipvsctl.netlink.dumps import DumpReader
from ipvsctl.netlink.transport import Transport

CODEC = Codec()  # one backend's memos (learned layouts), shared as a dump's entries share them

FAMILY = 0x1C

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 2**64 - 1)
ipv4 = st.builds(lambda n: "%d.%d.%d.%d" % tuple(n.to_bytes(4, "big")), u32)
ipv6 = st.builds(lambda b: __import__("_socket").inet_ntop(m.AF_INET6, b), st.binary(min_size=16, max_size=16))
scheduler = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=15)


@st.composite
def service_keys(draw):
    af = draw(st.sampled_from([m.AF_INET, m.AF_INET6]))
    if draw(st.booleans()):
        return m.ServiceKey(af, fwmark=draw(st.integers(1, 0xFFFFFFFF)))
    addr = draw(ipv4 if af == m.AF_INET else ipv6)
    return m.ServiceKey(af, draw(st.sampled_from([m.IPPROTO_TCP, m.IPPROTO_UDP, m.IPPROTO_SCTP])), addr, draw(u16))


@st.composite
def services(draw):
    key = draw(service_keys())
    netmask = draw(u32) if key.af == m.AF_INET else draw(st.integers(1, 128))
    flags = draw(st.integers(0, 0x3F)) & ~m.SVC_F_HASHED
    return m.Service(key, draw(scheduler), flags, draw(u32), netmask,
                     draw(st.one_of(st.just(""), scheduler)))


@st.composite
def destinations(draw, af=None):
    af = af or draw(st.sampled_from([m.AF_INET, m.AF_INET6]))
    addr = draw(ipv4 if af == m.AF_INET else ipv6)
    return m.Destination(af, addr, draw(u16), draw(st.integers(0, 4)), draw(st.integers(0, 2**31 - 1)),
                         draw(u32), draw(u32), draw(st.integers(0, 2)), draw(u16), draw(st.integers(0, 2)),
                         draw(u32), draw(u32), draw(u32),
                         m.Stats(*draw(st.lists(u64, min_size=10, max_size=10))))


def daemons():
    group = st.one_of(st.none(), st.just("239.1.2.3"), st.just("ff02::1:3"))
    return st.builds(m.Daemon, st.sampled_from([m.DAEMON_MASTER, m.DAEMON_BACKUP]),
                     st.text("abcdefgh0123", min_size=1, max_size=15), st.integers(0, 255), u16, group, u16,
                     st.integers(0, 255))


# --- round trips ------------------------------------------------------------


@given(services())
def test_service_round_trip(svc):
    for encoder in (encode.encode_new_service, encode.encode_set_service):
        assert CODEC.service(memoryview(encoder(FAMILY, svc))[16:]) == svc


@given(service_keys(), st.data())
def test_destination_round_trip(key, data):
    dest = data.draw(destinations())
    for encoder in (encode.encode_new_dest, encode.encode_set_dest):
        got = CODEC.dest(memoryview(encoder(FAMILY, key, dest))[16:], key.af)
        assert got == dest
        assert got == decode.decode_dest(memoryview(encoder(FAMILY, key, dest))[16:], key.af)


@given(daemons())
def test_daemon_round_trip(daemon):
    got = decode.decode_daemon(memoryview(encode.encode_new_daemon(FAMILY, daemon))[16:])
    assert got == daemon


@given(st.builds(m.Timeouts, u32, u32, u32))
def test_timeouts_round_trip(t):
    msg = encode.encode_set_timeouts(FAMILY, t)
    assert decode.decode_timeouts(memoryview(msg)[16:]) == t


# --- fast against generic ------------------------------------------------------


def _kernel_entry(d: m.Destination, pad: bool) -> bytes:
    """A NEW_DEST dump entry shaped as ip_vs_genl_fill_dest writes it."""
    def u64(atype, v):
        body = wire.nla(atype, struct.pack("=Q", v))
        return (wire.nla(C.IPVS_STATS_ATTR_PAD, b"") + body) if pad else body

    s = d.stats
    values = (s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes, s.cps, s.inpps, s.outpps, s.inbps, s.outbps)
    stats32 = wire.nest(C.IPVS_DEST_ATTR_STATS, *(wire.nla_u32(i + 1, v & 0xFFFFFFFF)
                                                   for i, v in enumerate(values)))
    stats64 = wire.nest(C.IPVS_DEST_ATTR_STATS64, *(u64(i + 1, v) for i, v in enumerate(values)))
    raw = __import__("_socket").inet_pton(d.af, d.addr).ljust(16, b"\0")
    parts = [wire.nla(C.IPVS_DEST_ATTR_ADDR, raw), wire.nla_be16(C.IPVS_DEST_ATTR_PORT, d.port),
             wire.nla_u32(C.IPVS_DEST_ATTR_FWD_METHOD, d.fwd), wire.nla_u32(C.IPVS_DEST_ATTR_WEIGHT, d.weight),
             wire.nla_u8(C.IPVS_DEST_ATTR_TUN_TYPE, d.tun_type),
             wire.nla_be16(C.IPVS_DEST_ATTR_TUN_PORT, d.tun_port),
             wire.nla_u16(C.IPVS_DEST_ATTR_TUN_FLAGS, d.tun_flags),
             wire.nla_u32(C.IPVS_DEST_ATTR_U_THRESH, d.u_threshold),
             wire.nla_u32(C.IPVS_DEST_ATTR_L_THRESH, d.l_threshold),
             wire.nla_u32(C.IPVS_DEST_ATTR_ACTIVE_CONNS, d.active_conns),
             wire.nla_u32(C.IPVS_DEST_ATTR_INACT_CONNS, d.inact_conns),
             wire.nla_u32(C.IPVS_DEST_ATTR_PERSIST_CONNS, d.persist_conns),
             wire.nla_u16(C.IPVS_DEST_ATTR_ADDR_FAMILY, d.af), stats32, stats64]
    return bytes([C.IPVS_CMD_NEW_DEST, 1, 0, 0]) + wire.nest(C.IPVS_CMD_ATTR_DEST, *parts)


def _full(d: m.Destination) -> tuple:
    return tuple(getattr(d, f) for f in d.__slots__)


def _run_of(entries: list[bytes]) -> bytes:
    return b"".join(wire.NLMSGHDR.pack(16 + len(p), FAMILY, C.NLM_F_MULTI, 7, 0) + p for p in entries)


@given(st.lists(destinations(), min_size=1, max_size=12), st.booleans())
def test_fast_decoders_match_the_generic_walker(dests, pad):
    entries = [_kernel_entry(d, pad) for d in dests]
    for d, p in zip(dests, entries):
        assert _full(CODEC.dest(p)) == _full(decode.decode_dest(p)) == _full(d)
    rows = CODEC.dest_run(_run_of(entries))
    if rows is not None:  # only runs of plain IPv4 entries of one layout are taken
        assert all(d.af == m.AF_INET for d in dests)
        assert [_full(x) for x in rows] == [_full(d.replace(stats=None)) for d in dests]


def _recorded_runs():
    """Every real-server dump datagram of the golden files, as the kernel sent it."""
    runs = []
    for path in golden_files():
        g = Golden.load(path)
        for state in g.states[:3]:
            for ds in state["dests"]:
                for i in ds:
                    runs.append((g.family, g.blobs[i]))
    return runs


RECORDED = _recorded_runs()


def test_fast_decoders_match_the_generic_walker_on_the_kernels_own_bytes():
    assert RECORDED, "no golden files"
    seen = 0
    for family, datagram in RECORDED:
        entries = [(off, p) for t, _f, _s, p, off in messages(datagram) if t == family]
        for _off, p in entries:
            assert _full(CODEC.dest(p)) == _full(decode.decode_dest(p))
            seen += 1
        end = max((off + 16 + len(p) for off, p in entries), default=0)
        rows = CODEC.dest_run(datagram[:end])
        if rows is not None:
            assert [_full(x) for x in rows] == [_full(decode.decode_dest(p).replace(stats=None))
                                                for _o, p in entries]
    assert seen > 100


def _full_service(s: m.Service) -> tuple:
    return tuple(getattr(s, f) for f in s.__slots__)


@given(st.lists(services(), min_size=1, max_size=8), st.lists(u64, min_size=10, max_size=10), st.booleans())
def test_the_service_layout_matches_the_generic_walker(svcs, counters, pad):
    """layouts.decode_service (a learned layout per entry shape, several per
    length) gives what decode.decode_service gives, counters included."""
    from support.kernel_entries import kernel_service_entry

    from ipvsctl.cache import BoundedCache
    from ipvsctl.netlink import layouts

    learned = BoundedCache(16)
    for svc in svcs:
        entry = kernel_service_entry(svc.replace(stats=m.Stats(*counters)), pad)
        for _ in range(2):  # learned, then read through the layout
            fast = layouts.decode_service(entry, learned, decode.decode_stats)
            assert _full_service(fast) == _full_service(decode.decode_service(entry))
            assert fast == svc
            assert layouts.decode_service_key(entry, learned) == svc.key
    assert learned


def _recorded_services():
    out = []
    for path in golden_files():
        g = Golden.load(path)
        for state in g.states[:3]:
            for i in state["services"]:
                out += [bytes(p) for t, _f, _s, p, _o in messages(g.blobs[i]) if t == g.family]
    return out


def test_the_service_layout_matches_the_generic_walker_on_the_kernels_own_bytes():
    entries = _recorded_services()
    assert len(entries) > 20, "no golden service entries"
    codec = Codec()
    for p in entries + entries:
        assert _full_service(codec.service(p)) == _full_service(decode.decode_service(p))
        assert codec.service_key(p) == decode.decode_service(p).key
    assert codec.service_layouts  # the layouts were learned and used


# --- any bytes -------------------------------------------------------------------


def _valid_payloads():
    out = [bytes(p) for fam, d in RECORDED[:20] for t, _f, _s, p, _o in messages(d) if t == fam]
    svc = m.Service(m.ServiceKey(m.AF_INET6, m.IPPROTO_UDP, "2001:db8::1", 53), "rr", 1, 300, 64, "sip")
    out.append(encode.encode_new_service(FAMILY, svc)[16:])
    out += _recorded_services()[:10]
    out.append(encode.encode_new_daemon(FAMILY, m.Daemon(1, "eth0", 3, 1400, "ff02::1", 8848, 2))[16:])
    out.append(encode.encode_set_timeouts(FAMILY, m.Timeouts(1, 2, 3))[16:])
    return out


VALID = _valid_payloads()
SERVICE_CODEC = Codec()
for _p in _recorded_services() + VALID:
    try:
        SERVICE_CODEC.service(_p)
    except wire.DecodeError:
        pass


@st.composite
def damaged(draw):
    """A valid payload with bytes flipped, cut, or inserted; or any bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=200))
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        what = draw(st.integers(0, 2))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if what == 0 and data:
            data[pos] = draw(st.integers(0, 255))
        elif what == 1:
            del data[pos:pos + draw(st.integers(1, 8))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


DECODERS = [CODEC.service, CODEC.dest, decode.decode_dest, decode.decode_daemon,
            decode.decode_timeouts, decode.decode_info, wire.decode_family_id, wire.decode_error,
            wire.decode_done, decode.service_family, lambda p: list(wire.iter_messages(p)),
            lambda p: CODEC.dest_run(_run_of([p]))]


@given(damaged())
@example(b"\x05\x01\x00\x00\x08\x00\x02\x00\x08\x00\x0b\x00")
def test_any_bytes_give_a_value_or_a_decode_error(payload):
    for decoder in DECODERS:
        try:
            decoder(payload)
        except wire.DecodeError:
            pass


@given(damaged())
def test_a_damaged_service_entry_reads_alike_fast_and_generic(payload):
    """Whatever the bytes, the learned service layout (its cache warmed by
    the valid entries) and the generic walker agree: the same value, or
    both a DecodeError."""
    def outcome(decoder):
        try:
            return _full_service(decoder(payload))
        except wire.DecodeError:
            return "DecodeError"

    assert outcome(SERVICE_CODEC.service) == outcome(decode.decode_service)
    # The key alone: the generic walker's key, wherever that one reads the
    # entry (elsewhere, the counters it skips may be what is damaged).
    if outcome(decode.decode_service) != "DecodeError":
        assert SERVICE_CODEC.service_key(payload) == decode.decode_service(payload).key


def test_an_entry_of_an_unknown_address_family_is_a_decode_error():
    """Found by test_any_bytes_...: a kernel-shaped real-server entry whose
    ADDR_FAMILY is 0 raised ValueError from inet_ntop in the fast path (the
    generic walker printed it as IPv4 with family 0)."""
    d = m.Destination(m.AF_INET, "10.0.0.1", 80, stats=m.Stats())
    entry = bytearray(_kernel_entry(d, False))
    af = wire.nla_u16(C.IPVS_DEST_ATTR_ADDR_FAMILY, m.AF_INET)
    at = bytes(entry).index(af)
    entry[at:at + len(af)] = wire.nla_u16(C.IPVS_DEST_ATTR_ADDR_FAMILY, 0)
    for decoder in (CODEC.dest, decode.decode_dest):
        try:
            decoder(bytes(entry))
        except wire.DecodeError as e:
            assert "address family 0" in str(e)
        else:
            raise AssertionError(f"{decode.__name__} decoded an entry of address family 0")


class _Replies:
    """A socket that answers every send with the given datagrams."""

    def __init__(self, datagrams):
        self.datagrams = list(datagrams)

    def send(self, buf):
        (self.seq,) = struct.unpack_from("=I", buf, 8)
        return len(buf)

    def recv_into(self, buf, nbytes=0, flags=0):
        if not self.datagrams:
            raise TimeoutError("nothing more: as SO_RCVTIMEO running out")
        d = bytearray(self.datagrams.pop(0))
        off = 0
        while off + 16 <= len(d):  # answer this request's seq, as the kernel does
            (length,) = struct.unpack_from("=I", d, off)
            struct.pack_into("=I", d, off + 8, self.seq)
            if length < 16:
                break
            off += (length + 3) & ~3
        buf[:min(len(d), len(buf))] = d[:len(buf)]
        return len(d)

    def getsockopt(self, *a):
        return 1 << 20

    def setsockopt(self, *a):
        pass

    def close(self):
        pass


def _message(payload: bytes, mtype: int = FAMILY, flags: int = C.NLM_F_MULTI) -> bytes:
    return wire.NLMSGHDR.pack(16 + len(payload), mtype, flags, 0, 0) + payload + bytes(-len(payload) % 4)


@given(st.lists(damaged(), max_size=4), st.booleans())
def test_any_reply_to_a_dump_gives_entries_or_a_clear_error(payloads, done):
    datagrams = [_message(p) for p in payloads] + ([_message(b"\0\0\0\0", C.NLMSG_DONE)] if done else [])
    t = DumpReader(Transport(sock=_Replies(datagrams), family=FAMILY))
    try:
        for p in t.dump(encode.encode_dump_services(FAMILY)):
            CODEC.service(p)
    except (wire.DecodeError, KernelError, OSError):
        pass
