"""JSON for programs: the schema of docs/json.md, --json on the compat path,
and `ipvsctl restore --json` (validation first, then one batch).

Everything runs in-process on a fake backend; the same round trip through a
real kernel is in tests/kernel/test_views.py.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json

import pytest

from ipvsctl import backend as b
from ipvsctl import jsonrestore
from ipvsctl import model as m
from ipvsctl.backend import KernelError
from ipvsctl.render import json as rj

A4, A6 = m.AF_INET, m.AF_INET6
BIG = 2**64 - 1


def _st(c: int) -> m.Stats:
    return m.Stats(conns=c, inpkts=c + 1, outpkts=c + 2, inbytes=c + 3, outbytes=c + 4,
                   cps=5, inpps=6, outpps=7, inbps=8, outbps=9)


TABLE = [
    (m.Service(m.ServiceKey(A4, m.IPPROTO_TCP, "192.0.2.10", 80), "wlc", m.SVC_F_PERSISTENT, 300,
               0xFFFFFF00, stats=_st(BIG)),
     [m.Destination(A4, "198.51.100.1", 80, m.FWD_MASQ, 3, 10, 2, active_conns=4, inact_conns=5,
                    persist_conns=6, stats=_st(BIG - 10)),
      m.Destination(A4, "198.51.100.2", 80, m.FWD_ROUTE, 0, stats=_st(0))]),
    (m.Service(m.ServiceKey(A4, m.IPPROTO_UDP, "192.0.2.53", 53), "rr", m.SVC_F_ONEPACKET), []),
    (m.Service(m.ServiceKey(A6, m.IPPROTO_SCTP, "2001:db8::10", 3868), "mh",
               m.SVC_F_PERSISTENT | m.SVC_F_SCHED2, 60, 64, "sip"),
     [m.Destination(A6, "2001:db8::11", 3868, m.FWD_MASQ, 1)]),
    (m.Service(m.ServiceKey(A6, fwmark=5), "sh", m.SVC_F_SCHED1 | m.SVC_F_SCHED2, netmask=128),
     [m.Destination(A6, "2001:db8::5", 0, m.FWD_TUNNEL, 1, tun_type=m.TUN_GUE, tun_port=6080,
                    tun_flags=m.TUN_F_CSUM),
      m.Destination(A4, "198.51.100.7", 0, m.FWD_TUNNEL, 7, 100, 50, tun_type=m.TUN_GRE,
                    tun_flags=m.TUN_F_REMCSUM),
      m.Destination(A6, "2001:db8::6", 0, m.FWD_TUNNEL, 2, tun_type=m.TUN_IPIP)]),
    (m.Service(m.ServiceKey(A4, fwmark=4294967295), "wrr"),
     [m.Destination(A4, "198.51.100.9", 0, m.FWD_LOCAL, 65535)]),
]

PROC_CONN = (
    "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
    "TCP C0000202 D431 C000020A 0050 C6336401 0050 ESTABLISHED     899\n"
    "UDP 2001:0db8:0000:0000:0000:0000:0000:0002 0035 2001:0db8:0000:0000:0000:0000:0000:0010 "
    "0035 2001:0db8:0000:0000:0000:0000:0000:0011 0035 UDP             299 sip 1234@example\n"
)


class FakeBackend:
    """The Backend protocol over a list, recording what is applied."""

    def __init__(self, table=TABLE, errors=None):
        self._table = table
        self.applied: list[b.Request] = []
        self.errors = errors or {}
        self.closed = False

    def info(self):
        return m.Info(0x010201, 4096)

    def table(self, counters=True):
        return list(self._table)

    def services(self):
        return [s for s, _ in self._table]

    def service(self, key):
        for svc, _ in self._table:
            if svc.key == key:
                return svc
        raise KernelError(errno.ESRCH, b.OP_GET_SERVICE)

    def destinations(self, key):
        for svc, dests in self._table:
            if svc.key == key:
                return list(dests)
        raise KernelError(errno.ESRCH, b.OP_GET_DESTS)

    def timeouts(self):
        return m.Timeouts(900, 120, 300)

    def daemons(self):
        return [m.Daemon(m.DAEMON_BACKUP, "eth1", 7, 1472, "239.1.2.3", 8848, 2),
                m.Daemon(m.DAEMON_MASTER, "eth0", 3)]

    def read_proc_net(self, name):
        assert name == "ip_vs_conn"
        return PROC_CONN

    def apply(self, request):
        self.apply_many([request])

    def apply_many(self, requests):
        reqs = list(requests)
        self.applied += reqs
        return {i: KernelError(e, reqs[i].op) for i, e in self.errors.items() if i < len(reqs)}

    def close(self):
        self.closed = True


@pytest.fixture
def fake(monkeypatch):
    from ipvsctl import session

    state = {"backend": FakeBackend(), "netns": []}

    def open_backend(netns):
        state["netns"].append(netns)
        return state["backend"]

    monkeypatch.setattr(session, "open_backend", open_backend)
    # The host running the unit tests may have no IPVS modules at all: every
    # scheduler is taken as there (tests/unit/test_schedulers.py and the
    # kernel tier test the check itself).
    from ipvsctl import schedulers

    monkeypatch.setattr(schedulers.Probe, "state", lambda self, module: (schedulers.AVAILABLE, "loaded"))
    return state


def compat(*args, stdin: str = ""):
    from ipvsctl.cli import run_compat

    out, err = io.StringIO(), io.StringIO()
    status = run_compat(list(args), io.StringIO(stdin), out, err)
    return status, out.getvalue(), err.getvalue()


def app(*args, stdin: str = ""):
    from ipvsctl.commands.group import run_app

    out, err = io.StringIO(), io.StringIO()
    import sys

    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = run_app(list(args), "ipvsctl")
    finally:
        sys.stdin = old_stdin
    return status, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------
# The schema: key names and types are a promise (docs/json.md)
# --------------------------------------------------------------------------

SERVICE_KEYS = ["family", "protocol", "address", "port", "fwmark", "scheduler", "sched_flags",
                "persistent", "timeout", "netmask", "pe", "one_packet", "stats", "rates",
                "destinations"]
DEST_KEYS = ["family", "address", "port", "forward", "weight", "u_threshold", "l_threshold",
             "tunnel", "active_conns", "inact_conns", "persist_conns", "stats", "rates"]


def test_document_keys_are_stable():
    doc = rj.table_doc(m.Info(0x010201, 4096), TABLE)
    assert list(doc) == ["version", "conn_tab_size", "services"]
    for svc in doc["services"]:
        assert list(svc) == SERVICE_KEYS
        assert list(svc["stats"]) == ["conns", "inpkts", "outpkts", "inbytes", "outbytes"]
        assert list(svc["rates"]) == ["cps", "inpps", "outpps", "inbps", "outbps"]
        for d in svc["destinations"]:
            assert list(d) == DEST_KEYS
            assert d["tunnel"] is None or list(d["tunnel"]) == ["type", "port", "checksum"]


def test_document_values():
    doc = rj.table_doc(m.Info(0x010201, 4096), TABLE)
    assert doc["version"] == "1.2.1" and doc["conn_tab_size"] == 4096
    tcp, udp, sctp, fwm6, fwm4 = doc["services"]
    assert tcp["family"] == "inet" and tcp["protocol"] == "tcp" and tcp["address"] == "192.0.2.10"
    assert tcp["port"] == 80 and tcp["fwmark"] is None
    assert tcp["persistent"] is True and tcp["timeout"] == 300 and tcp["netmask"] == "255.255.255.0"
    assert tcp["stats"]["conns"] == BIG  # exact, no scaling
    d0 = tcp["destinations"][0]
    assert (d0["forward"], d0["weight"], d0["u_threshold"], d0["l_threshold"]) == ("masq", 3, 10, 2)
    assert (d0["active_conns"], d0["inact_conns"], d0["persist_conns"]) == (4, 5, 6)
    assert udp["one_packet"] is True and udp["destinations"] == [] and udp["pe"] is None
    assert udp["netmask"] == "255.255.255.255" and udp["sched_flags"] == []
    assert sctp["family"] == "inet6" and sctp["netmask"] == 64 and sctp["pe"] == "sip"
    assert sctp["sched_flags"] == ["mh-port"]
    assert fwm6["protocol"] is None and fwm6["address"] is None and fwm6["port"] is None
    assert fwm6["fwmark"] == 5 and fwm6["sched_flags"] == ["sh-fallback", "sh-port"]
    assert [d["tunnel"] for d in fwm6["destinations"]] == [
        {"type": "gue", "port": 6080, "checksum": "csum"},
        {"type": "gre", "port": 0, "checksum": "remcsum"},
        {"type": "ipip", "port": 0, "checksum": "nocsum"}]
    assert fwm6["destinations"][1]["family"] == "inet"
    assert fwm4["fwmark"] == 4294967295 and fwm4["destinations"][0]["forward"] == "local"


def test_dumps_compact_or_pretty_and_exact():
    doc = rj.table_doc(None, TABLE[:1])
    compact = rj.dumps(doc)
    assert compact.endswith("\n") and compact.count("\n") == 1 and ": " not in compact
    pretty = rj.dumps(doc, pretty=True)
    assert pretty.startswith('{\n  "version": null,')
    assert json.loads(compact) == json.loads(pretty) == doc
    assert str(BIG) in compact


def test_other_documents():
    assert rj.timeouts_doc(m.Timeouts(900, 120, 300)) == {
        "timeouts": {"tcp": 900, "tcp_fin": 120, "udp": 300}}
    daemons = rj.daemons_doc(FakeBackend().daemons())["daemons"]
    assert [d["state"] for d in daemons] == ["master", "backup"]  # ipvsadm's order
    assert daemons[1] == {"state": "backup", "mcast_interface": "eth1", "syncid": 7,
                          "sync_maxlen": 1472, "mcast_group": "239.1.2.3", "mcast_port": 8848,
                          "mcast_ttl": 2}
    conns = rj.connections_doc(PROC_CONN)["connections"]
    assert conns[0] == {
        "protocol": "tcp", "client_address": "192.0.2.2", "client_port": 54321,
        "virtual_address": "192.0.2.10", "virtual_port": 80,
        "destination_address": "198.51.100.1", "destination_port": 80,
        "state": "ESTABLISHED", "expires": 899, "pe_name": None, "pe_data": None}
    assert conns[1]["client_address"] == "2001:db8::2" and conns[1]["destination_port"] == 53
    assert (conns[1]["pe_name"], conns[1]["pe_data"]) == ("sip", "1234@example")


# --------------------------------------------------------------------------
# --json on the compat path
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [[], ["--stats"], ["--rate"], ["--thresholds"],
                                  ["--persistent-conn"], ["--tun-info"], ["--exact"], ["--nosort"],
                                  ["--stats", "--exact"]])
def test_every_list_mode_prints_the_one_document(fake, mode):
    status, out, err = compat("-Ln", *mode, "--json")
    assert (status, err) == (0, "")
    doc = json.loads(out)
    assert [s["scheduler"] for s in doc["services"]] == (
        ["wlc", "rr", "mh", "sh", "wrr"] if mode == ["--nosort"] else
        # ipvsadm's order: by fwmark, with ipvsadm's wrapping comparator (4294967295
        # comes before 0), then family, protocol, address, port
        ["wrr", "wlc", "rr", "mh", "sh"])
    assert len(out.splitlines()) == 1


def test_json_word_may_stand_anywhere(fake):
    a = compat("--json", "-L", "-n")
    b_ = compat("-L", "--json", "-n")
    assert a == b_ and a[0] == 0
    # without a list command, --json alone lists (like a bare ipvsctl)
    status, out, _ = compat("--json")
    assert status == 0 and "services" in json.loads(out)


def test_one_service(fake):
    status, out, err = compat("-L", "-n", "-t", "192.0.2.10:80", "--json")
    assert status == 0
    (svc,) = json.loads(out)["services"]
    assert svc["address"] == "192.0.2.10"
    status, out, err = compat("-L", "-f", "5", "-6", "--json")
    assert json.loads(out)["services"][0]["fwmark"] == 5
    status, out, err = compat("-L", "-t", "192.0.2.99:80", "--json")
    assert (status, out, err) == (1, "", "No such service\n")


def test_connections_timeouts_daemons(fake):
    status, out, _ = compat("-Lnc", "--json")
    assert status == 0 and json.loads(out) == rj.connections_doc(PROC_CONN)
    status, out, _ = compat("-L", "--timeout", "--json")
    assert json.loads(out) == {"timeouts": {"tcp": 900, "tcp_fin": 120, "udp": 300}}
    status, out, _ = compat("-L", "--daemon", "--json")
    assert [d["state"] for d in json.loads(out)["daemons"]] == ["master", "backup"]


def test_json_refused_outside_list_commands(fake):
    status, out, err = compat("-A", "-t", "192.0.2.1:80", "--json")
    assert (status, out, err) == (2, "", "--json: only with a list command (-L, -l)\n")
    assert fake["backend"].applied == []


def test_without_json_nothing_changes(fake):
    from ipvsctl.grammar import parse
    from ipvsctl.ops import execute

    for argv in (["-Ln"], ["-Ln", "--stats"], ["-Lnc"], ["-L", "--timeout"], ["-Sn"]):
        status, out, err = compat(*argv)
        expected = execute(parse(argv), FakeBackend())
        assert (status, out, err) == (expected.status, expected.text, expected.err)


def test_json_after_double_dash_is_not_ours():
    from ipvsctl.cli import extract_json

    assert extract_json(["-Ln"]) == (["-Ln"], False)
    assert extract_json(["-Ln", "--json"]) == (["-Ln"], True)
    assert extract_json(["-Ln", "--", "--json"]) == (["-Ln", "--", "--json"], False)


def test_netns_and_json_together(fake):
    status, out, _ = compat("--netns", "blue", "-Ln", "--json")
    assert status == 0 and fake["netns"] == ["blue"]


# --------------------------------------------------------------------------
# ipvsctl list --json
# --------------------------------------------------------------------------


def test_list_json_equals_compat_json(fake):
    s1, out1, _ = app("list", "--json")
    s2, out2, _ = compat("-Ln", "--json")
    assert s1 == s2 == 0 and out1 == out2


def test_list_json_filters(fake):
    _, out, _ = app("list", "--json", "--protocol", "fwmark")
    assert [s["fwmark"] for s in json.loads(out)["services"]] == [4294967295, 5]
    _, out, _ = app("list", "--json", "--address", "2001:db8::5")
    (svc,) = json.loads(out)["services"]
    assert [d["address"] for d in svc["destinations"]] == ["2001:db8::5"]


# --------------------------------------------------------------------------
# restore --json: the round trip, validation, kernel failures
# --------------------------------------------------------------------------


def _doc_text(table=TABLE) -> str:
    return rj.dumps(rj.table_doc(m.Info(0x010201, 4096), table))


def test_round_trip_gives_back_the_same_table():
    table = jsonrestore.loads(_doc_text())
    assert table == TABLE  # model equality: identity and settings, not counters


def test_restore_sends_one_batch_in_document_order(fake):
    status, out, err = app("restore", "--json", stdin=_doc_text())
    assert (status, out, err) == (0, "", "")
    reqs = fake["backend"].applied
    assert [r.op for r in reqs] == ["add_service", "add_dest", "add_dest", "add_service",
                                    "add_service", "add_dest", "add_service", "add_dest",
                                    "add_dest", "add_dest", "add_service", "add_dest"]
    assert reqs[0].service == TABLE[0][0] and reqs[1].dest == TABLE[0][1][0]
    assert reqs[1].service == TABLE[0][0].key


def test_restore_flush_first(fake, tmp_path):
    path = tmp_path / "table.json"
    path.write_text(_doc_text())
    status, _, _ = app("restore", "--json", "--flush", str(path))
    assert status == 0 and fake["backend"].applied[0].op == "flush"


def test_restore_reports_every_refusal_by_path(fake):
    fake["backend"].errors = {0: errno.EEXIST, 2: errno.EEXIST, 11: errno.ESRCH}
    status, out, err = app("restore", "--json", stdin=_doc_text())
    assert status == 255
    assert err.splitlines() == [
        "restore: services[0] (TCP 192.0.2.10:80): Service already exists",
        "restore: services[0].destinations[1] (TCP 192.0.2.10:80 -> 198.51.100.2:80): "
        "Destination already exists",
        "restore: services[4].destinations[0] (FWM 4294967295 -> 198.51.100.9:0): "
        "Service not defined",
        "restore: 3 of 12 requests failed; the other 9 were applied",
    ]


def test_restore_dry_run_changes_nothing(fake):
    status, out, _ = app("restore", "--json", "--dry-run", stdin=_doc_text())
    assert status == 0
    assert out.splitlines()[0] == "restore: valid: 5 services, 7 real servers (dry run: nothing was changed)"
    assert "  checked: this kernel has the schedulers wlc, rr, mh, sh, wrr and the persistence engines sip named" in out.splitlines()
    assert fake["backend"].applied == [] and fake["netns"] == []


def _mutated(path, value, delete=False):
    doc = json.loads(_doc_text())
    target = doc
    *parents, last = path
    for p in parents:
        target = target[p]
    if delete:
        del target[last]
    else:
        target[last] = value
    return json.dumps(doc)


BAD = [
    (["services", 0, "port"], "80", "services[0].port: expected an integer 0..65535, got \"80\""),
    (["services", 0, "port"], 65536, "services[0].port: 65536 is out of range 0..65535"),
    (["services", 0, "port"], True, "services[0].port: expected an integer 0..65535, got true"),
    (["services", 0, "protocol"], "icmp", 'services[0].protocol: expected one of "tcp", "udp", "sctp", got "icmp"'),
    (["services", 0, "address"], "192.0.2.300", 'services[0].address: "192.0.2.300" is not an IPv4 or IPv6 address'),
    (["services", 0, "family"], "inet6", 'services[0].address: "192.0.2.10" is not an IPv6 address (see family)'),
    (["services", 0, "scheduler"], "", "services[0].scheduler: expected a scheduler name of 1..15 bytes"),
    (["services", 0, "netmask"], 24, 'services[0].netmask: expected an IPv4 netmask like "255.255.255.0", got 24'),
    (["services", 2, "netmask"], 129, "services[2].netmask: 129 is out of range 1..128"),
    (["services", 2, "sched_flags"], ["sh-port"], 'services[2].sched_flags[0]: "sh-port" is a flag of the sh scheduler, not of mh'),
    (["services", 2, "sched_flags"], ["turbo"], "services[2].sched_flags[0]: expected one of flag-1"),
    (["services", 0, "persistent"], "yes", 'services[0].persistent: expected true or false, got "yes"'),
    (["services", 0, "timeout"], -1, "services[0].timeout: -1 is out of range 0..2678400"),
    (["services", 3, "port"], 80, "services[3].port: must be null for a fwmark service"),
    (["services", 3, "protocol"], "tcp", "services[3].protocol: must be null for a fwmark service"),
    (["services", 3, "fwmark"], 0, "services[3].fwmark: 0 is out of range 1..4294967295"),
    (["services", 1, "wieght"], 1, "services[1].wieght: unknown field"),
    (["services", 0, "destinations", 1, "weight"], -1,
     "services[0].destinations[1].weight: -1 is out of range 0..2147483647"),
    (["services", 0, "destinations", 1, "forward"], "nat",
     'services[0].destinations[1].forward: expected one of "masq", "local", "tunnel", "route", "bypass", got "nat"'),
    (["services", 0, "destinations", 1, "tunnel"], {"type": "ipip"},
     'services[0].destinations[1].tunnel: must be null unless forward is "tunnel"'),
    (["services", 3, "destinations", 0, "tunnel", "port"], 0,
     "services[3].destinations[0].tunnel.port: a gue tunnel needs a port 1..65535"),
    (["services", 3, "destinations", 0, "tunnel", "type"], "vxlan",
     'services[3].destinations[0].tunnel.type: expected one of "ipip", "gue", "gre", got "vxlan"'),
    (["services", 3, "destinations", 0, "tunnel", "checksum"], "maybe",
     "services[3].destinations[0].tunnel.checksum: expected one of"),
    (["services", 0, "destinations", 0, "u_threshold"], 2**32,
     "services[0].destinations[0].u_threshold: 4294967296 is out of range 0..4294967295"),
    (["services", 0, "destinations", 0, "address"], "2001:db8::1",
     'services[0].destinations[0].address: "2001:db8::1" is not an IPv4 address (see family)'),
    (["services", 0, "destinations", 1, "address"], "198.51.100.1",
     "services[0].destinations[1]: the same real server as destinations[0]"),
    (["services", 1, "address"], "192.0.2.10", None),  # see below: duplicate only with same proto
    (["services", 4, "fwmark"], 5, None),  # IPv4 mark 5 differs from IPv6 mark 5: valid
    (["services"], {}, "services: expected a list, got {}"),
    (["services", 0], [], "services[0]: expected an object, got []"),
    (["version"], "1.2.1", None),
]


@pytest.mark.parametrize("path, value, message", BAD, ids=[".".join(map(str, p)) + "=" + json.dumps(v)
                                                          for p, v, _ in BAD])
def test_restore_refuses_bad_fields_by_name_and_changes_nothing(fake, path, value, message):
    text = _mutated(path, value)
    status, out, err = app("restore", "--json", stdin=text)
    if message is None:
        assert status == 0, err
        return
    assert status == 2
    assert err.startswith(f"ipvsctl: restore: {message}"), err
    assert err.endswith("(nothing was changed)\n")
    assert fake["backend"].applied == [] and fake["netns"] == []


@pytest.mark.parametrize("path, message", [
    (["services"], "services: missing (is this the output of `ipvsctl list --json`?)"),
    (["services", 0, "protocol"], "services[0].protocol: missing"),
    (["services", 0, "destinations", 0, "address"], "services[0].destinations[0].address: missing"),
])
def test_restore_refuses_missing_fields(fake, path, message):
    status, _, err = app("restore", "--json", stdin=_mutated(path, None, delete=True))
    assert status == 2 and err.startswith(f"ipvsctl: restore: {message}"), err


def test_restore_refuses_mixed_families_without_tunnel(fake):
    doc = json.loads(_doc_text())
    doc["services"][0]["destinations"][0].update(family="inet6", address="2001:db8::1")
    status, _, err = app("restore", "--json", stdin=json.dumps(doc))
    assert status == 2 and err.startswith(
        'ipvsctl: restore: services[0].destinations[0].address: a real server of another '
        'address family than its service needs forward "tunnel"'), err


def test_restore_refuses_duplicates_and_non_json(fake):
    doc = json.loads(_doc_text())
    doc["services"].append(dict(doc["services"][1]))
    status, _, err = app("restore", "--json", stdin=json.dumps(doc))
    assert status == 2 and "services[5]: the same service as services[1]" in err
    status, _, err = app("restore", "--json", stdin='{"services": [}')
    assert status == 2 and "not valid JSON: Expecting value at line 1 column 15" in err
    status, _, err = app("restore", "--json", "/nonexistent/table.json")
    assert status == 2 and err == "ipvsctl: /nonexistent/table.json: No such file or directory\n"
    assert fake["backend"].applied == []


def test_restore_minimal_hand_written_document(fake):
    text = json.dumps({"services": [
        {"protocol": "tcp", "address": "192.0.2.1", "port": 80,
         "destinations": [{"address": "198.51.100.1"}, {"address": "198.51.100.2", "forward": "masq",
                                                         "port": 8080, "weight": 0}]},
        {"fwmark": 1, "family": "inet6", "scheduler": "rr", "persistent": True},
    ]})
    status, _, err = app("restore", "--json", stdin=text)
    assert status == 0, err
    add_svc, dest1, dest2, fwm = fake["backend"].applied
    assert add_svc.service == m.Service(m.ServiceKey(A4, m.IPPROTO_TCP, "192.0.2.1", 80))
    assert dest1.dest == m.Destination(A4, "198.51.100.1", 80)  # route, weight 1, the service's port
    assert dest2.dest == m.Destination(A4, "198.51.100.2", 8080, m.FWD_MASQ, 0)
    assert fwm.service == m.Service(m.ServiceKey(A6, fwmark=1), "rr", m.SVC_F_PERSISTENT, 360, 128)


def test_restore_of_ipvsadm_lines_goes_through_the_compat_restore(fake):
    status, out, err = app("restore", stdin="-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 198.51.100.1\n")
    assert (status, err) == (0, "")
    assert [r.op for r in fake["backend"].applied] == ["add_service", "add_dest"]
    status, out, err = app("restore", "--dry-run", stdin="-A -t 192.0.2.1:80\n-a -t 192.0.2.1:80 -r nowhere:x\n")
    assert status == 2 and "line 2: illegal real server address[:port] specified" in err


def test_indented_on_a_terminal(fake):
    from ipvsctl.cli import run_compat

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    assert run_compat(["-L", "-u", "192.0.2.53:53", "--json"], io.StringIO(), out, io.StringIO()) == 0
    assert out.getvalue().startswith('{\n  "version": "1.2.1",\n  "conn_tab_size": 4096,\n')
    assert json.loads(out.getvalue())["services"][0]["port"] == 53


def test_restore_names_input_that_is_not_utf8(fake, tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "ipvsctl", "restore", "--dry-run"],
                       input=b"-A -t 192.0.2.1:80 -s \xff\n", capture_output=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr == (b"ipvsctl: standard input: not UTF-8 text (invalid start byte at byte 22)\n")
