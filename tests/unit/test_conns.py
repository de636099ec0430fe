"""`ipvsctl conns`: filters on the file's own words, summaries, streaming.

The lines below are written the way the kernel writes /proc/net/ip_vs_conn
(ip_vs_conn_seq_show: IPv4 as %08X, IPv6 as eight groups of four hex
digits, ports as %04X; as seen in the real tables of
tests/kernel/test_conns_real_table.py).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from ipvsctl import conns
from ipvsctl.render.connections import parse_line
from ipvsctl.render.conns_view import stream_list, summary_lines, top_lines
from ipvsctl.render.json import connections_doc
from ipvsctl.render.layout import Out, output_for

HEADER = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
V6C = "2001:0db8:0000:0000:0000:0000:0000:0002"
V6V = "2001:0db8:0000:0000:0000:0000:0000:0010"
V6D = "2001:0db8:0000:0000:0000:0000:0000:0011"
LINES = [
    "TCP C6120002 C0F6 C612000A 0050 C6120102 0050 ESTABLISHED     899\n",
    "TCP C6120002 C0F7 C612000A 0050 C6120202 0050 TIME_WAIT       119\n",
    "TCP C6120003 C0F8 C612000A 0050 C6120102 0050 TIME_WAIT       118\n",
    "UDP C6120003 0400 C612000A 0035 C6120102 0035 UDP             299\n",
    f"TCP {V6C} D99E {V6V} 01BB {V6D} 01BB SYN_RECV         59\n",
    "UDP C6120004 13C4 C612000B 13C4 C6120302 13C4 UDP             179 sip 7a6e2b3c\n",
    "TCP C6120005 0000 C612000A 0000 C6120102 0000 NONE            300\n",  # a persistence template
]
TEXT = HEADER + "".join(LINES)


def lines():
    return io.StringIO(TEXT)


def kept(**kw) -> list[str]:
    return [line for _, line in conns.kept(lines(), conns.Filter(**kw))]


def test_addresses_in_the_kernels_spelling():
    assert conns.kernel_address("198.18.0.10") == "C612000A"
    assert conns.kernel_address("[2001:db8::10]") == V6V
    assert conns.kernel_address("2001:DB8::10") == V6V
    with pytest.raises(ValueError, match="not an IPv4 or IPv6 address: 'example.com'"):
        conns.kernel_address("example.com")


@pytest.mark.parametrize("text,want", [
    ("198.18.0.10", ("198.18.0.10", None)),
    ("198.18.0.10:80", ("198.18.0.10", 80)),
    ("[2001:db8::10]:443", ("2001:db8::10", 443)),
    ("[2001:db8::10]", ("2001:db8::10", None)),
    ("2001:db8::10", ("2001:db8::10", None)),
])
def test_endpoints(text, want):
    assert conns.split_endpoint(text) == want


@pytest.mark.parametrize("text", ["198.18.0.10:http", "198.18.0.10:70000", "[2001:db8::1]443"])
def test_bad_endpoints(text):
    with pytest.raises(ValueError):
        conns.split_endpoint(text)


def test_filters():
    assert len(kept()) == len(LINES)
    assert kept(protocol="udp") == [LINES[3], LINES[5]]
    assert kept(service="198.18.0.10:80", service_protocol="tcp") == [LINES[0], LINES[1], LINES[2]]
    assert kept(service="198.18.0.10") == [LINES[0], LINES[1], LINES[2], LINES[3], LINES[6]]
    assert kept(service="[2001:db8::10]:443") == [LINES[4]]
    assert kept(real_server="198.18.1.2:80") == [LINES[0], LINES[2]]
    assert kept(real_server="198.18.1.2") == [LINES[0], LINES[2], LINES[3], LINES[6]]
    assert kept(client="198.18.0.3") == [LINES[2], LINES[3]]
    assert kept(client="198.18.0.0/30") == [LINES[0], LINES[1], LINES[2], LINES[3]]
    assert kept(client="2001:db8::/32") == [LINES[4]]
    assert kept(client="0.0.0.0/0") == [x for x in LINES if V6C not in x]
    assert kept(states=["time_wait", "SYN_RECV"]) == [LINES[1], LINES[2], LINES[4]]
    assert kept(states=["NONE"]) == [LINES[6]]
    assert kept(protocol="tcp", client="198.18.0.3", states=["TIME_WAIT"]) == [LINES[2]]
    with pytest.raises(ValueError, match="disagree"):
        conns.Filter(protocol="udp", service="198.18.0.10", service_protocol="tcp")
    with pytest.raises(ValueError, match="not an address or network: 'x/33'"):
        conns.Filter(client="x/33")


def test_summary_and_top():
    s = conns.Summary(conns.count(lines(), conns.Filter()))
    doc = conns.summary_doc(s)
    assert doc["connections"] == len(LINES)
    assert doc["states"] == {"ESTABLISHED": 1, "TIME_WAIT": 2, "UDP": 2, "SYN_RECV": 1, "NONE": 1}
    assert s.states() == ["SYN_RECV", "ESTABLISHED", "TIME_WAIT", "UDP", "NONE"]
    svc = {(x["protocol"], x["address"], x["port"]): x for x in doc["services"]}
    # in address and port order, IPv4 first
    assert [k for k in svc] == [("tcp", "198.18.0.10", 0), ("udp", "198.18.0.10", 53),
                                ("tcp", "198.18.0.10", 80), ("udp", "198.18.0.11", 5060),
                                ("tcp", "2001:db8::10", 443)]
    web = svc[("tcp", "198.18.0.10", 80)]
    assert web["connections"] == 3 and web["states"] == {"ESTABLISHED": 1, "TIME_WAIT": 2}
    assert [(r["address"], r["connections"], r["states"]) for r in web["real_servers"]] == [
        ("198.18.1.2", 2, {"ESTABLISHED": 1, "TIME_WAIT": 1}), ("198.18.2.2", 1, {"TIME_WAIT": 1})]
    top = conns.top_doc(s, 2)["real_servers"]
    assert [(r["address"], r["port"], r["connections"]) for r in top] == [
        ("198.18.1.2", 80, 2), ("198.18.1.2", 0, 1)]
    assert json.loads(json.dumps(doc)) == doc


def test_json_listing_is_the_documents_connections():
    """The streamed listing is the same document as `-Lc --json`'s."""
    streamed = json.loads("".join(conns.json_lines(lines(), conns.Filter())))
    assert streamed == connections_doc(TEXT)
    assert streamed["connections"][5]["pe_name"] == "sip"
    only = json.loads("".join(conns.json_lines(lines(), conns.Filter(protocol="udp"))))
    assert [c["client_port"] for c in only["connections"]] == [1024, 5060]


def test_table_view():
    out = io.StringIO()
    n = stream_list(conns.rows(lines(), conns.Filter()), out, Out(width=100))
    text = out.getvalue().splitlines()
    assert n == len(LINES) and len(text) == 2 + n
    assert text[0].split() == ["Proto", "Client", "Virtual", "Real", "server", "State", "Expires"]
    assert set(text[1]) == {"─"}
    assert text[2].split() == ["TCP", "198.18.0.2:49398", "198.18.0.10:80", "198.18.1.2:80",
                               "ESTABLISHED", "14:59"]
    assert text[6].split()[1:4] == ["[2001:db8::2]:55710", "[2001:db8::10]:443", "[2001:db8::11]:443"]
    # columns line up: each starts where its header does; Expires is right-aligned
    for col in (1, 2):
        assert {x.index(x.split()[col]) for x in text[2:]} == {text[0].index(("Client", "Virtual")[col - 1])}
    assert {len(x) for x in text[2:]} == {len(text[0])}
    parsed = [parse_line(x) for x in LINES]
    assert all(p is not None for p in parsed)


def test_table_view_decides_as_list_does():
    """An output whose encoding has no box characters gets an ASCII rule;
    no colour off a terminal; --width is the width."""
    raw = io.BytesIO()
    ascii_out = io.TextIOWrapper(raw, encoding="ascii")
    stream_list(conns.rows(lines(), conns.Filter()), ascii_out, output_for(ascii_out, width=120))
    ascii_out.flush()
    text = raw.getvalue().decode("ascii").splitlines()
    assert set(text[1]) == {"-"} and "\x1b" not in text[0]


def _views(width: int, color: bool = False) -> dict[str, str]:
    out = Out(width=width, color=color)
    listed = io.StringIO()
    stream_list(conns.rows(lines(), conns.Filter()), listed, out)
    s = conns.Summary(conns.count(lines(), conns.Filter()))
    return {"list": listed.getvalue(), "summary": "\n".join(summary_lines(s, out)),
            "top": "\n".join(top_lines(s, 10, out))}


@pytest.mark.parametrize("width", [20, 30, 40, 50, 60, 70, 80])
def test_narrow_widths_never_break_an_address_port_or_number(width):
    """As in `ipvsctl list`: every address and port on screen is whole, or
    visibly cut with an ellipsis, or its column is left out and named;
    never split over two lines, and no line is wider than the width."""
    endpoints = {"198.18.1.2:80", "198.18.2.2:80", "[2001:db8::11]:443", "198.18.3.2:5060"}
    for name, text in _views(width).items():
        tokens = set(text.split())
        for label in endpoints:
            shown = [t for t in tokens if t == label or (t.endswith("…") and label.startswith(t[:-1]))]
            assert shown, (width, name, label, text)
        for line in text.splitlines():
            assert len(line) <= width, (width, name, line)
            first = line.split()[0] if line.split() else ""
            assert not first.startswith(("]", ":", "/")), (width, name, line)
        if width < 100 and name == "list":
            assert "(left out to fit" in text  # Expires, at least, is named


def test_summary_and_top_views():
    v = _views(80)
    blocks = v["summary"].split("\n\n")
    web = next(b for b in blocks if b.startswith("TCP 198.18.0.10:80 "))
    assert web.splitlines() == [
        "TCP 198.18.0.10:80  3 connections",
        "Real server         SYN_RECV  ESTABLISHED  TIME_WAIT  UDP  NONE  Total",
        "─" * 70,
        "198.18.1.2:80              0            1          1    0     0      2",
        "198.18.2.2:80              0            0          1    0     0      1",
        "─" * 70,
        "service total              0            1          2    0     0      3"]
    # every service's table has the same widths (they line up)
    assert len({len(b.splitlines()[1]) for b in blocks}) == 1
    assert v["top"].splitlines()[0].split() == ["#", "Real", "server", "Connections", "SYN_RECV",
                                                "ESTABLISHED", "TIME_WAIT", "UDP", "NONE"]
    assert v["top"].splitlines()[2].split() == ["1", "198.18.1.2:80", "2", "0", "1", "1", "0", "0"]
    empty = conns.Summary({})
    assert summary_lines(empty, Out()) == top_lines(empty, 3, Out()) == ["no connections"]


def test_colours_are_lists():
    """Headers and totals bold, the protocol bold and the virtual address
    bold cyan, as `ipvsctl list` writes them; nothing else coloured."""
    v = _views(120, color=True)
    summary = v["summary"].splitlines()
    assert summary[0] == "\x1b[1mTCP\x1b[0m \x1b[1;36m198.18.0.10:0\x1b[0m  1 connection"
    assert summary[1].startswith("\x1b[1mReal server") and summary[1].endswith("\x1b[0m")
    assert summary[5].startswith("\x1b[1mservice total")
    assert "\x1b" not in summary[3]
    listed = v["list"].splitlines()
    assert listed[0].startswith("\x1b[1mProto") and "\x1b" not in "".join(listed[1:])
    assert "\x1b" not in "".join(_views(120).values())


# --------------------------------------------------------------------------
# A million lines in the memory of a few
# --------------------------------------------------------------------------

# A child that makes N lines in the kernel's format lazily (15 clients, 3 real
# servers, 3 states), runs the summary and a filtered JSON listing over them,
# and reports its peak resident memory (VmHWM).
CHILD = r"""
import sys
from ipvsctl import conns
n = int(sys.argv[1])
def lines():
    yield "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
    for i in range(n):
        yield "TCP %08X %04X C612000A 0050 C612%02X02 0050 %-11s %7d\n" % (
            0xC6120000 + (i >> 16), i & 0xFFFF, 1 + i % 3,
            ("ESTABLISHED", "TIME_WAIT", "SYN_RECV")[i % 3], i % 900)
summary = conns.summary_doc(conns.Summary(conns.count(lines(), conns.Filter())))
assert summary["connections"] == n and len(summary["services"][0]["real_servers"]) == 3
written = 0
for piece in conns.json_lines(lines(), conns.Filter(client="198.18.0.1", states=["ESTABLISHED"])):
    written += len(piece)
with open("/proc/self/status") as f:
    hwm = next(int(x.split()[1]) for x in f if x.startswith("VmHWM"))
print(summary["connections"], written, hwm)
"""


def _run(n: int) -> tuple[int, int, int]:
    r = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    count, written, hwm = map(int, r.stdout.split())
    return count, written, hwm


def test_a_million_lines_in_the_memory_of_a_thousand():
    small = _run(1000)
    big = _run(1_000_000)
    assert big[0] == 1_000_000
    assert big[1] > 5_000_000  # 21,846 connections of client 198.18.0.1 listed as JSON
    # A million lines held as str would take ~110 MB, as dicts ~600 MB.
    assert big[2] - small[2] < 2048, f"peak RSS {small[2]} KiB for 1,000 lines, {big[2]} KiB for 1,000,000"
