"""Properties of `restore --json` (jsonrestore.py): any JSON document, and any
text, gives a table or a DocumentError that names the bad field; never a
traceback.  And a table listed as JSON reads back as the same table."""

from __future__ import annotations

import json

from hypothesis import example, given
from hypothesis import strategies as st

from ipvsctl import jsonrestore

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                    st.sampled_from(["", "tcp", "udp", "sctp", "inet", "inet6", "192.0.2.1", "2001:db8::1",
                                     "255.255.255.0", "masq", "tunnel", "route", "local", "gue", "gre",
                                     "ipip", "csum", "nocsum", "remcsum", "rr", "sh", "sh-port", "flag-1"]),
                    st.text(max_size=8))
KEYS = ["services", "version", "conn_tab_size", "family", "protocol", "address", "port", "fwmark",
        "scheduler", "sched_flags", "persistent", "timeout", "netmask", "pe", "one_packet",
        "destinations", "forward", "weight", "u_threshold", "l_threshold", "tunnel", "type", "checksum",
        "active_conns", "stats", "rates", "bogus"]
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=6),
                      max_leaves=25)


@st.composite
def near_valid(draw):
    """A plausible document, with any field possibly replaced."""
    dest = {"address": draw(st.sampled_from(["198.51.100.1", "2001:db8::2"])), "port": 80,
            "forward": draw(st.sampled_from(["masq", "tunnel", "route", "local", "bypass"])), "weight": 1}
    if draw(st.booleans()):
        dest["tunnel"] = {"type": draw(st.sampled_from(["gue", "gre", "ipip"])), "port": 6080, "checksum": "csum"}
    svc = {"protocol": "tcp", "address": "192.0.2.1", "port": 80, "scheduler": "rr", "persistent": True,
           "timeout": 300, "netmask": "255.255.255.0", "destinations": [dest]}
    if draw(st.booleans()):
        svc = {"fwmark": 7, "family": "inet6", "destinations": [dest]}
    for obj in (svc, dest):
        for _ in range(draw(st.integers(0, 2))):
            obj[draw(st.sampled_from(KEYS))] = draw(values)
    return {"services": [svc]}


@given(st.one_of(values, near_valid()))
@example({"services": [{"protocol": "tcp", "address": "192.0.2.1", "port": 80, "netmask": 24}]})
@example({"services": [{"fwmark": 1, "destinations": [{"address": "1.2.3.4", "tunnel": {}}]}]})
@example({"services": [{"protocol": "tcp", "address": "192.0.2.1", "port": 80, "family": []}]})  # TypeError (fixed)
def test_any_document_gives_a_table_or_a_document_error(doc):
    try:
        table = jsonrestore.parse_document(doc)
    except jsonrestore.DocumentError as e:
        assert str(e)
        return
    assert isinstance(table, list)
    jsonrestore.requests(table, flush=True)


@given(st.text(max_size=80) | values.map(json.dumps))
@example('{"services": [')
@example("[1e999]")
def test_any_text_gives_a_table_or_a_document_error(text):
    try:
        jsonrestore.loads(text)
    except jsonrestore.DocumentError as e:
        assert str(e)
