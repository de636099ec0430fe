"""Properties of `-c`'s reading of /proc/net/ip_vs_conn (render/connections.py):
any text gives a listing, never a traceback."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from support.fakes import NoNames

from ipvsctl import names
from ipvsctl.render.format import Format
from ipvsctl.render.connections import render_connections

HEADER = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
FIELDS = ["TCP", "UDP", "SCTP", "IP", "C0A80001", "0A000001", "2001:0db8:0000:0000:0000:0000:0000:0001",
          "::1", "1F90", "0050", "FFFF", "10000", "ESTABLISHED", "TIME_WAIT", "NONE", "899", "-1",
          "99999999999", "sip", "abc", "", "zz", "\t", "é"]

rows = st.lists(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), max_size=12).map(" ".join)


@given(st.lists(rows, max_size=6), st.booleans(), st.booleans(), st.booleans())
@example(["TCP C0A80001 1F90 C0000201 0050 C6336401 0050 ESTABLISHED -1"], True, False, False)
@example(["UDP ::1 0035 ::1 0035 ::1 0035 UDP 120 sip"], True, True, False)
@example(["", "TCP TCP TCP \x00 TCP TCP TCP TCP TCP"], False, False, False)  # ValueError from inet_pton (fixed)
def test_any_proc_text_gives_a_listing(lines, numeric, persistent, header):
    text = (HEADER if header else "") + "\n".join(lines)
    saved = names.socket
    names.socket = NoNames()
    try:
        out = render_connections(text, Format(numeric=numeric, persistent_conn=persistent))
    finally:
        names.socket = saved
        names._HOSTS.clear()
        names._PORTS.clear()
    assert out.startswith("IPVS connection entries\n") and out.endswith("\n")
