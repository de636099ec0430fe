"""The bulk listing path: destination dumps read a received buffer at a time
into DestinationRows, and plain -Ln/-Sn rendered from those columns.

Each piece is checked against the general path it shortcuts, which the rest
of the suite (and the kernel tier, against ipvsadm) already holds to the
reference: CODEC.dest for decoding, _dest_line + order.sort_destinations
for the text.
"""

from __future__ import annotations

import random
import struct

import pytest
from support.fake_ipvs import ScriptedKernel, dumps, nlmsg
from support.kernel_entries import FAMILY, kernel_dest_entry

from ipvsctl import model as m
from ipvsctl.render.format import Format
from ipvsctl.netlink import decode, encode, wire
from ipvsctl.netlink import runs as runs_module
from ipvsctl.netlink.codec import Codec
from ipvsctl.netlink.rows import SETTINGS, DestinationRows
from ipvsctl.order import sort_destinations
from ipvsctl.netlink import constants as C
from ipvsctl.netlink.dumps import DumpInterrupted
from ipvsctl.render import text

CODEC = Codec()  # one backend's memos (learned layouts), shared as a dump's entries share them

SEQ = 7


def dests(n: int, seed: int = 1, *, spread: bool = False) -> list[m.Destination]:
    """n IPv4 real servers with every setting varied (tunnels, thresholds, counters)."""
    rnd = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        a = (rnd.randrange(1, 1 << 32) if spread else (10 << 24) + rnd.randrange(1 << 20))
        port = rnd.choice((0, 80, 443, 8080, 65535))
        if (a, port) in seen:
            continue
        seen.add((a, port))
        fwd = rnd.choice((m.FWD_MASQ, m.FWD_LOCAL, m.FWD_TUNNEL, m.FWD_ROUTE))
        tun = rnd.choice((m.TUN_IPIP, m.TUN_GUE, m.TUN_GRE)) if fwd == m.FWD_TUNNEL else m.TUN_IPIP
        out.append(m.Destination(
            m.AF_INET, "%d.%d.%d.%d" % (a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255), port, fwd,
            weight=rnd.choice((0, 1, 5, 65535, 2**31 - 1)),
            u_threshold=rnd.choice((0, 0, 100)), l_threshold=rnd.choice((0, 0, 7)),
            tun_type=tun, tun_port=rnd.choice((0, 6080)) if tun == m.TUN_GUE else 0,
            tun_flags=rnd.choice((0, 1, 2)) if tun == m.TUN_GUE else (rnd.choice((0, 1)) if tun else 0),
            active_conns=rnd.choice((0, 3, 70000)), inact_conns=rnd.choice((0, 9)),
            persist_conns=rnd.choice((0, 2))))
    return out


def run_of(ds, pad: bool = False, **kw) -> memoryview:
    """Kernel-shaped dump entries as one received run (whole messages)."""
    return memoryview(b"".join(nlmsg(FAMILY, C.NLM_F_MULTI, SEQ, kernel_dest_entry(d, pad, **kw)) for d in ds))


def without_stats(ds):
    return [d.replace(stats=None) for d in ds]


def full(d: m.Destination) -> tuple:
    return tuple(getattr(d, f) for f in m.Destination.__slots__)


# ---------------------------------------------------------------------------
# decoding a run
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("pad", [False, True])
def test_a_run_decodes_like_entry_by_entry(pad):
    ds = dests(300, seed=3)
    rows = CODEC.dest_run(run_of(ds, pad))
    assert isinstance(rows, DestinationRows) and len(rows) == 300
    generic = [decode.decode_dest(kernel_dest_entry(d, pad)) for d in ds]
    assert [full(d) for d in rows] == [full(d) for d in without_stats(generic)]
    assert [full(d) for d in rows] == [full(d) for d in without_stats(ds)]


def test_the_settings_are_in_host_units():
    """The decoder makes each settings tuple what Destination holds: the
    forwarding method without the kernel's other flag bits beside it, the
    tunnel port in host order (the wire's forms once leaked into the model
    and the renderers)."""
    d = m.Destination(m.AF_INET, "10.0.0.1", 80, m.FWD_TUNNEL, 3, 100, 7, m.TUN_GUE, 6080, m.TUN_F_CSUM,
                      1, 2, 3)
    as_sent = d.replace(fwd=m.FWD_TUNNEL | 0x0100)  # IP_VS_CONN_F_INACTIVE, as the kernel reports it
    rows = CODEC.dest_run(run_of([as_sent]))
    assert dict(zip(SETTINGS, rows.settings[0])) == {f: getattr(d, f) for f in SETTINGS}


def test_equal_settings_share_one_tuple():
    ds = [m.Destination(m.AF_INET, f"10.0.{i // 250}.{i % 250 + 1}", 80, m.FWD_MASQ) for i in range(500)]
    rows = CODEC.dest_run(run_of(ds))
    assert len({id(s) for s in rows.settings}) == 1


def test_an_ipv6_entry_of_the_same_length_is_not_taken():
    # The address attribute is 16 bytes for both families: same message
    # length, so only the checked address family tells them apart.
    ds = dests(3)
    v6 = m.Destination(m.AF_INET6, "2001:db8::1", 80, m.FWD_MASQ)
    assert len(kernel_dest_entry(v6)) == len(kernel_dest_entry(ds[0]))
    assert CODEC.dest_run(run_of([*ds, v6])) is None
    assert CODEC.dest_run(run_of([v6, *ds])) is None


def test_an_entry_with_its_attributes_in_another_order_is_not_taken():
    ds = dests(4)
    odd = bytearray(nlmsg(FAMILY, C.NLM_F_MULTI, SEQ, kernel_dest_entry(ds[2])))
    # Swap the types of the two threshold attributes: same length, same bytes
    # elsewhere, but the headers no longer match the learned layout.
    u = struct.pack("=HH", 8, C.IPVS_DEST_ATTR_U_THRESH)
    lo = struct.pack("=HH", 8, C.IPVS_DEST_ATTR_L_THRESH)
    i, j = odd.index(u), odd.index(lo)
    odd[i:i + 4], odd[j:j + 4] = lo, u
    mixed = bytes(run_of(ds[:2])) + bytes(odd) + bytes(run_of(ds[3:]))
    assert CODEC.dest_run(memoryview(mixed)) is None


@pytest.mark.parametrize("what", ["port", "stats64"])
def test_an_entry_with_another_header_outside_the_settings_is_not_taken(what):
    ds = dests(4)
    odd = bytearray(nlmsg(FAMILY, C.NLM_F_MULTI, SEQ, kernel_dest_entry(ds[1])))
    if what == "port":  # the port attribute's header, retyped
        hdr = struct.pack("=HH", 6, C.IPVS_DEST_ATTR_PORT)
        i = odd.index(hdr)
        odd[i:i + 4] = struct.pack("=HH", 6, 99)
    else:  # the STATS64 container's header, retyped
        (start,) = [s for t, s, _e in wire.attrs(odd, 16 + 4 + 4) if t == C.IPVS_DEST_ATTR_STATS64]
        odd[start - 2:start] = struct.pack("=H", 99)
    assert len(odd) == len(nlmsg(FAMILY, C.NLM_F_MULTI, SEQ, kernel_dest_entry(ds[0])))
    mixed = bytes(run_of(ds[:1])) + bytes(odd) + bytes(run_of(ds[2:]))
    assert CODEC.dest_run(memoryview(mixed)) is None


@pytest.mark.parametrize("kw", [{"with_tun": False}, {"with_af": False}])
def test_older_kernels_entries_are_left_to_the_general_decoder(kw):
    assert CODEC.dest_run(run_of(dests(5), **kw)) is None


def test_a_run_that_is_not_whole_messages_is_not_taken():
    raw = bytes(run_of(dests(3)))
    assert CODEC.dest_run(memoryview(raw[:-4])) is None


def test_same_headers():
    raw = bytes(run_of(dests(5)))
    length = len(raw) // 5
    assert wire.same_headers(raw, length, 5)
    other_seq = raw[:length * 4] + nlmsg(FAMILY, C.NLM_F_MULTI, SEQ + 1, raw[length * 4 + 16:])
    assert not wire.same_headers(other_seq, length, 5)
    assert not wire.same_headers(raw, length, 6)


@pytest.mark.parametrize("count", [1, 2, 10, wire.SMALL_RUN, wire.SMALL_RUN + 1, 300])
def test_fixed_bytes_small_and_big_runs_agree(count):
    """FixedBytes checks small runs message by message and big ones a byte
    position at a time: both find a change at any fixed offset of any
    message, and ignore changes elsewhere."""
    rng = random.Random(count)
    length = 40
    offsets = [0, 1, 2, 3, 9, 20, 21, 22, 39]
    reference = bytes(rng.randrange(256) for _ in range(length))
    check = wire.FixedBytes(length, offsets)
    run = bytearray(reference * count)
    for i in range(count):  # the other bytes vary freely
        for j in set(range(length)) - set(offsets):
            run[i * length + j] = rng.randrange(256)
    assert check.same(bytes(run), count, reference)
    assert not check.same(bytes(run), count + 1, reference)  # too short
    for j in offsets:
        bad = bytearray(run)
        i = rng.randrange(count)
        bad[i * length + j] ^= 0x10
        assert not check.same(bytes(bad), count, reference), (i, j)


# ---------------------------------------------------------------------------
# the dump reader's runs
# ---------------------------------------------------------------------------


class BufferKernel(ScriptedKernel):
    """Answers a dump with ``per`` entries per datagram, NLMSG_DONE in the
    last entries' datagram (as netlink_dump does when there is room)."""

    def __init__(self, entries, per: int, intr_at: int | None = None):
        super().__init__(lambda cmd, msg: (0, entries, False))
        self.per, self.intr_at = per, intr_at

    def dump_reply(self, seq, msg):
        _err, entries, _ = self.handler("dump", msg)
        msgs = [nlmsg(FAMILY, C.NLM_F_MULTI | (C.NLM_F_DUMP_INTR if i == self.intr_at else 0), seq, e)
                for i, e in enumerate(entries)]
        done = nlmsg(C.NLMSG_DONE, C.NLM_F_MULTI, seq, struct.pack("=i", 0))
        groups = [msgs[i:i + self.per] for i in range(0, len(msgs), self.per)] or [[]]
        groups[-1].append(done)
        self.queue.extend(b"".join(g) for g in groups)


@pytest.mark.parametrize("per", [1, 3, 64])
def test_runs_carry_every_entry_in_order(per):
    ds = dests(100)
    k = BufferKernel([kernel_dest_entry(d) for d in ds], per)
    runs = list(dumps(k).dump_runs(encode.encode_dump_dests(FAMILY, m.ServiceKey(m.AF_INET, 6, "10.0.0.1", 80))))
    assert len(runs) == -(-100 // per)
    payloads = [bytes(p) for run in runs for *_x, p in wire.iter_messages(run)]
    assert payloads == [kernel_dest_entry(d) for d in ds]
    assert not k.queue


def test_an_interrupted_dump_is_reported_after_its_runs():
    k = BufferKernel([kernel_dest_entry(d) for d in dests(10)], 4, intr_at=5)
    with pytest.raises(DumpInterrupted):
        list(dumps(k).dump_runs(encode.encode_dump_services(FAMILY)))
    assert not k.queue


def test_an_abandoned_run_dump_is_drained():
    k = BufferKernel([kernel_dest_entry(d) for d in dests(10)], 2)
    it = dumps(k).dump_runs(encode.encode_dump_services(FAMILY))
    next(it)
    it.close()
    assert not k.queue


# ---------------------------------------------------------------------------
# DestinationRows and the text rendered from it
# ---------------------------------------------------------------------------


def rows_of(ds) -> DestinationRows:
    rows = CODEC.dest_run(run_of(ds))
    assert rows is not None
    return rows


SVC = m.Service(m.ServiceKey(m.AF_INET, m.IPPROTO_TCP, "192.0.2.1", 80), "rr")
FORMATS = {
    "-Ln": Format(numeric=True),
    "-Sn": Format(numeric=True, rule=True),
    "-Ln --nosort": Format(numeric=True, nosort=True),
    "-Sn --nosort": Format(numeric=True, rule=True, nosort=True),
}


def shown(dests, fmt: Format):
    """What the listing query hands the renderer: ipvsadm's order, unless --nosort."""
    return dests if fmt.nosort else sort_destinations(dests)


def listed(dests, fmt: Format) -> str:
    return "".join(text.service_text(SVC, shown(dests, fmt), fmt))


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
@pytest.mark.parametrize("order", ["random", "ascending", "descending"])
def test_rows_render_like_destinations(fmt, order):
    ds = dests(2500, seed=11)
    if order != "random":
        ds.sort(key=lambda d: (tuple(map(int, d.addr.split("."))), d.port), reverse=order == "descending")
    rows = rows_of(ds)
    assert isinstance(shown(rows, fmt), DestinationRows)  # drawn from its columns
    assert listed(rows, fmt) == listed(without_stats(ds), fmt)


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=FORMATS.keys())
def test_addresses_2_31_apart_take_ipvsadms_wrapping_order(fmt):
    ds = dests(300, seed=5, spread=True)
    assert listed(rows_of(ds), fmt) == listed(without_stats(ds), fmt)


def test_formats_with_counters_or_names_iterate_destinations():
    ds = dests(50, seed=2)
    for fmt in (Format(numeric=True, thresholds=True), Format(numeric=True, persistent_conn=True),
                Format(numeric=True, tun_info=True), Format(numeric=True, stats=True)):
        assert listed(rows_of(ds), fmt) == listed(without_stats(ds), fmt)


def test_repeats_and_key_order():
    ds = dests(40, seed=8)
    rows = rows_of(ds)
    assert not rows.has_repeats()
    planes, settings = rows.in_key_order()
    ordered = list(zip(*planes))
    assert ordered == sorted(zip(*rows.planes))
    original = dict(zip(zip(*rows.planes), rows.settings))
    assert list(settings) == [original[k] for k in ordered]
    assert [rows.key(i) for i in range(len(rows))] == list(rows.keys())
    rows.extend(rows_of(ds[7:8]))
    assert rows.has_repeats()
    assert not rows_of(sorted(ds, key=lambda d: d.addr)[:1]).has_repeats()


@pytest.mark.parametrize("shape", ["one network, one port", "ports vary", "addresses spread", "one server"])
def test_names_write_constant_columns_once_and_agree_with_the_keys(shape):
    ds = {"one network, one port": [d.replace(port=8080) for d in dests(300, seed=4)],
          "ports vary": dests(300, seed=4),
          "addresses spread": dests(300, seed=4, spread=True),
          "one server": dests(1)}[shape]
    rows = rows_of(ds)
    assert list(rows.names()) == ["%d.%d.%d.%d:%d" % k for k in rows.keys()] == [f"{d.addr}:{d.port}" for d in ds]


def test_one_server_listed_twice_is_a_repeat():
    d = dests(1)
    rows = rows_of(d + d)
    assert rows.has_repeats()
    planes, settings = rows.in_key_order()
    assert len(list(zip(*planes))) == len(list(settings)) == 2
    assert not rows_of(d).has_repeats()


@pytest.mark.parametrize("spread", [False, True])
def test_rows_sort_in_columns_like_the_general_path(spread):
    """order.sort_destinations keeps a DestinationRows in columns, in the
    order the general path gives (and falls back to it where ipvsadm's
    comparator wraps)."""
    from ipvsctl.order import sort_destinations

    ds = dests(500, seed=5, spread=spread)
    rows = CODEC.dest_run(run_of(ds))
    ordered = sort_destinations(rows)
    assert [full(d) for d in ordered] == [full(d) for d in sort_destinations(list(rows))]
    assert isinstance(ordered, DestinationRows) != spread  # spread: 2^31 apart, general path


def test_the_list_view_of_rows_is_the_list_view_of_their_destinations():
    from ipvsctl.order import sort_destinations
    from ipvsctl.render import table as tv

    ds = dests(300, seed=6)
    rows = sort_destinations(CODEC.dest_run(run_of(ds)))
    for persistent in (0, m.SVC_F_PERSISTENT):
        svc = m.Service(m.ServiceKey(m.AF_INET, m.IPPROTO_TCP, "192.0.2.1", 80), flags=persistent)
        for color in (False, True):
            assert (tv.render_text([(svc, rows)], 100, color=color)
                    == tv.render_text([(svc, list(rows))], 100, color=color))


def test_a_table_in_one_pass_reads_like_service_after_service():
    """render.text.table_text (one pass, tails shared by the table, small
    services joined into one piece) writes exactly what service_text writes
    for each service in turn, for columns and for Destination lists, small
    services and one bigger than a piece."""
    table = []
    for i, n in enumerate((3, 1, 0, 10, 700, 2, 1)):
        svc = m.Service(m.ServiceKey(m.AF_INET, m.IPPROTO_TCP, f"192.0.2.{i + 1}", 80 + i), "wrr",
                        flags=m.SVC_F_PERSISTENT if i % 2 else 0, timeout=300 if i % 2 else 0)
        ds = dests(n, seed=20 + i)
        table.append((svc, rows_of(ds) if n and i % 3 else without_stats(ds)))
    for fmt in (*FORMATS.values(), Format(numeric=True, thresholds=True)):
        shown_table = [(svc, shown(d, fmt)) for svc, d in table]
        one_pass = list(text.table_text(shown_table, fmt))
        each = "".join(p for svc, d in shown_table for p in text.service_text(svc, d, fmt))
        assert "".join(one_pass) == each
        assert all(p.endswith("\n") for p in one_pass)


@pytest.mark.parametrize("change", ["same", "reordered", "one missing", "one more"])
def test_covers_dests_in_columns_agrees_with_destinations(change):
    from ipvsctl.netlink.consistency import covers_dests

    ds = dests(60, seed=9)
    again = {"same": ds, "reordered": ds[::-1], "one missing": ds[:-1], "one more": ds + dests(61, seed=3)[-1:]}[change]
    want = covers_dests(without_stats(ds), without_stats(again))
    assert covers_dests(rows_of(ds), rows_of(again)) == want == (change != "one more")


@pytest.mark.parametrize("n", [0, 1, 2, 5, 16, 17])
@pytest.mark.parametrize("order", ["random", "ascending", "descending", "one repeated"])
def test_small_rows_name_and_order_like_big_ones(n, order):
    """Up to rows._SMALL servers, names and key order are computed whole
    rather than by constant columns: same names, same order, same text."""
    ds = dests(n, seed=30 + n)
    if order == "one repeated" and ds:
        ds = ds + ds[:1]
    elif order != "random":
        ds.sort(key=lambda d: (tuple(map(int, d.addr.split("."))), d.port), reverse=order == "descending")
    if not ds:
        return
    rows = rows_of(ds)
    assert list(rows.names()) == [f"{d.addr}:{d.port}" for d in ds]
    planes, settings = rows.in_key_order()
    assert list(zip(*planes)) == sorted(zip(*rows.planes))
    for fmt in FORMATS.values():
        assert listed(rows, fmt) == listed(without_stats(ds), fmt)


# ---------------------------------------------------------------------------
# many runs decoded together (runs.decode_dest_runs), each one's order found
# ---------------------------------------------------------------------------


def _key(d: m.Destination) -> tuple:
    return (tuple(map(int, d.addr.split("."))), d.port)


def _shaped(shape: str, seed: int) -> list[m.Destination]:
    """A service's real servers in the kernel's order, of one shape."""
    ds = sorted(dests(6, seed=seed), key=_key)
    picks = {
        "ascending": range(6), "descending": range(5, -1, -1), "mixed": (2, 0, 5, 1, 4, 3),
        "ascending but the last pair": (0, 1, 2, 3, 5, 4), "ascending but the first pair": (1, 0, 2, 3, 4, 5),
        "descending but the last pair": (5, 4, 3, 2, 0, 1), "descending but the first pair": (4, 5, 3, 2, 1, 0),
        "one": (0,), "two descending": (1, 0), "repeated": (0, 1, 1),
    }[shape]
    return [ds[k] for k in picks]


RUN_SHAPES = ["ascending", "descending", "mixed", "ascending but the last pair", "ascending but the first pair",
              "descending but the last pair", "descending but the first pair", "one", "two descending", "repeated"]


def _in_order(rows: DestinationRows) -> list[tuple]:
    planes, settings = rows.in_key_order()
    return list(zip(zip(*planes), settings))


@pytest.mark.parametrize("order", ["shapes in turn", "shuffled"])
def test_runs_decoded_together_keep_each_ones_order_and_find_its_direction(order):
    """Each run's rows hold its own servers in the kernel's order; the order
    found for the group (ascending, descending with the reversed rows cut
    from the group) gives the same key order as each run on its own, and
    ipvsadm's order (order.sort_destinations) of its servers."""
    shapes = [RUN_SHAPES[i % len(RUN_SHAPES)] for i in range(3 * len(RUN_SHAPES))]
    if order == "shuffled":
        random.Random(4).shuffle(shapes)
    services = [_shaped(shape, seed=100 + i) for i, shape in enumerate(shapes)]
    runs = [run_of(ds) for ds in services]
    together = runs_module.decode_dest_runs(runs)
    assert all(isinstance(r, DestinationRows) for r in together)
    for shape, ds, run, rows in zip(shapes, services, runs, together):
        assert [full(d) for d in rows] == [full(d) for d in without_stats(ds)], shape  # --nosort
        alone = CODEC.dest_run(run)
        assert _in_order(rows) == _in_order(alone) == sorted(zip(zip(*alone.planes), alone.settings)), shape
        assert [full(d) for d in sort_destinations(rows)] == \
            [full(d) for d in sort_destinations(without_stats(ds))], shape
        assert list(rows.planes[0]) == [int(d.addr.split(".")[0]) for d in ds]  # still the kernel's order
    directions = {shape: rows._direction for shape, rows in zip(shapes, together)}
    assert directions["ascending"] == directions["one"] == "ascending"
    assert directions["descending"] == directions["two descending"] == "descending"


# ---------------------------------------------------------------------------
# a table that mixes IPv4 and IPv6 services: one group for the IPv4 ones
# ---------------------------------------------------------------------------


def _v6_servers(n: int, seed: int) -> list[m.Destination]:
    """n IPv6 real servers (their entries have the IPv4 ones' length)."""
    return [m.Destination(m.AF_INET6, f"2001:db8:{seed:x}::{j + 1:x}", 80 + j, m.FWD_MASQ, weight=j)
            for j in range(n)]


def _mixed_table(count: int, v6_first: bool) -> list[list[m.Destination]]:
    """The real servers of ``count`` services in the kernel's order, IPv4 and
    IPv6 services interleaved (every third IPv6; the first one too when
    ``v6_first``), each IPv4 one of a shape in turn."""
    out = []
    for i in range(count):
        if i % 3 == 2 or (v6_first and i == 0):
            out.append(_v6_servers(1 + i % 5, seed=i))
        else:
            out.append(_shaped(RUN_SHAPES[i % len(RUN_SHAPES)], seed=200 + i))
    return out


@pytest.mark.parametrize("v6_first", [False, True], ids=["IPv4 first", "IPv6 first"])
def test_ipv4_services_among_ipv6_ones_decode_as_one_group(v6_first, monkeypatch):
    """IPv6 entries have the IPv4 ones' length, so a mixed table's runs fall
    in one length group: the IPv4 services are decoded as one joined run
    (and their order found for the group) and the IPv6 ones left to the
    general decoder, as each on its own would be.  (Once the IPv6 runs made
    the whole group fail and every run was decoded on its own.)"""
    services = _mixed_table(3 * len(RUN_SHAPES), v6_first)
    runs = [run_of(ds) for ds in services]
    assert len({r.tobytes()[:4] for r in runs}) == 1  # one message length
    decoded = []
    real_decode = getattr(runs_module, "_decode", None)
    monkeypatch.setattr(runs_module, "_decode", lambda lay, run: decoded.append(len(run)) or real_decode(lay, run),
                        raising=False)
    together = runs_module.decode_dest_runs(runs, Codec().run_layouts)
    ipv4 = [ds[0].af == m.AF_INET for ds in services]
    assert decoded == [sum(len(r) for r, v4 in zip(runs, ipv4) if v4)]  # one joined run, nothing else
    for ds, run, rows, v4 in zip(services, runs, together, ipv4):
        alone = Codec().dest_run(run)
        if not v4:
            assert rows is None is alone
            continue
        keys = [_key(d) for d in ds]
        if len(set(keys)) == len(keys) > 1 and keys in (sorted(keys), sorted(keys, reverse=True)):
            assert rows._direction in ("ascending", "descending")  # found for the group, before any look
        assert [full(d) for d in rows] == [full(d) for d in without_stats(ds)]  # --nosort
        assert _in_order(rows) == _in_order(alone)
        assert [full(d) for d in sort_destinations(rows)] == [full(d) for d in sort_destinations(without_stats(ds))]


def test_a_service_with_ipv6_servers_behind_ipv4_ones_leaves_its_group_to_runs():
    """An IPv4 service may have IPv6 (tunnel) servers: its run starts IPv4,
    so it joins the group, which then does not decode whole; every run is
    decoded on its own, and that one is left to the general decoder."""
    services = [_shaped("ascending", seed=300), _shaped("descending", seed=301), _v6_servers(2, seed=3)]
    behind = _shaped("mixed", seed=302) + [m.Destination(m.AF_INET6, "2001:db8::9", 80, m.FWD_TUNNEL)]
    services.insert(1, behind)
    together = runs_module.decode_dest_runs([run_of(ds) for ds in services], Codec().run_layouts)
    assert together[1] is None and together[3] is None
    for k in (0, 2):
        assert [full(d) for d in together[k]] == [full(d) for d in without_stats(services[k])]


def test_a_layout_learned_from_an_ipv6_entry_decodes_ipv4_ones():
    """The first entry of a length seen may be IPv6: it teaches the layout
    (the same as IPv4's), by which IPv4 entries then decode."""
    codec = Codec()
    v6, v4 = _v6_servers(3, seed=5), dests(40, seed=8)
    assert codec.dest_run(run_of(v6)) is None
    rows = codec.dest_run(run_of(v4))
    assert [full(d) for d in rows] == [full(d) for d in without_stats(v4)]
