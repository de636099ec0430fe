"""sending.send: the one way -R, restore --json and the put-back send a
batch and report each refusal."""

from __future__ import annotations

from ipvsctl import backend as b
from ipvsctl import model as m
from ipvsctl import sending
from support.fake_ipvs import MemoryIPVS

KEY = m.ServiceKey(m.AF_INET, m.IPPROTO_TCP, "192.0.2.1", 80)
SVC = m.Service(KEY, "rr")
REAL = m.Destination(m.AF_INET, "198.51.100.1", 80, m.FWD_MASQ)


def test_refusals_in_ipvsadms_words_in_request_order_and_what_was_applied():
    ipvs = MemoryIPVS()
    sent = sending.send(ipvs, [
        (None, b.Request(b.OP_FLUSH)),  # no part of the input: not counted
        (3, b.Request(b.OP_ADD_SERVICE, service=SVC)),
        (4, b.Request(b.OP_ADD_SERVICE, service=SVC)),  # exists
        (5, b.Request(b.OP_ADD_DEST, service=KEY, dest=REAL)),
        (6, b.Request(b.OP_ADD_DEST, service=m.ServiceKey(m.AF_INET, m.IPPROTO_UDP, "192.0.2.1", 80),
                      dest=REAL)),  # no such service
    ])
    assert sent.applied == 2
    assert [(r.where, r.message, r.hint) for r in sent.refusals] == [
        (4, "Service already exists", ""), (6, "Service not defined", "")]
    assert len(ipvs.batches) == 1  # one pipelined batch


def test_what_a_request_is_about():
    assert sending.describe(b.Request(b.OP_ADD_SERVICE, service=SVC)) == "TCP 192.0.2.1:80"
    assert sending.describe(b.Request(b.OP_ADD_DEST, service=KEY, dest=REAL)) == \
        "TCP 192.0.2.1:80 -> 198.51.100.1:80"
    assert sending.describe(b.Request(b.OP_FLUSH)) == "clear"
    assert sending.describe(b.Request(b.OP_SET_TIMEOUTS, timeouts=m.Timeouts(1, 2, 3))) == "timeouts"
