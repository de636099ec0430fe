"""`ipvsctl metrics`: the exposition text, held to prometheus_client and promtool.

ipvsctl writes the text format itself (speed; see ipvsctl/metrics.py), so
these tests check it against independent readers and writers:
prometheus_client's parser reads it back, prometheus_client's own writer
(generate_latest) given the same families must say the same, and promtool
(Debian's, fetched by scripts/setup) must accept it.  The real-kernel
counterparts are in tests/kernel/test_metrics_after_traffic.py.
"""

from __future__ import annotations

import http.client
import io
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ipvsctl import metrics
from ipvsctl import model as m
from ipvsctl import metrics_http

A4, A6 = m.AF_INET, m.AF_INET6
BIG = 2**64 - 3  # a 64-bit counter far past float precision


def _st(n: int) -> m.Stats:
    return m.Stats(n, n * 7, n * 5, n * 700, n * 500, n % 13, n % 17, n % 19, n % 23, n % 29)


TABLE = [
    (m.Service(m.ServiceKey(A4, m.IPPROTO_TCP, "192.0.2.10", 80), "wlc", stats=_st(1000)),
     [m.Destination(A4, "198.51.100.1", 80, m.FWD_MASQ, 3, active_conns=4, inact_conns=9,
                    persist_conns=1, stats=_st(600)),
      m.Destination(A4, "198.51.100.2", 8080, m.FWD_MASQ, 0, inact_conns=2, stats=_st(400))]),
    (m.Service(m.ServiceKey(A4, m.IPPROTO_UDP, "192.0.2.53", 0), "rr", m.SVC_F_PERSISTENT, 300,
               stats=_st(0)), []),
    # fwmark 5 for both families: one label set each (node_exporter's collector repeated these)
    (m.Service(m.ServiceKey(A4, fwmark=5), "mh", stats=_st(3)),
     [m.Destination(A4, "198.51.100.6", 0, m.FWD_TUNNEL, 2, tun_type=m.TUN_GRE, stats=_st(3))]),
    (m.Service(m.ServiceKey(A6, fwmark=5), "dh", stats=m.Stats(BIG, BIG, 1, 2, 3)),
     [m.Destination(A6, "2001:db8::5", 0, m.FWD_TUNNEL, 1, stats=m.Stats(BIG, BIG, 1, 2, 3)),
      m.Destination(A4, "198.51.100.8", 0, m.FWD_ROUTE, 1, stats=None)]),
    (m.Service(m.ServiceKey(A6, m.IPPROTO_SCTP, "2001:db8::10", 3868), 'odd"sched\\', stats=_st(7)),
     [m.Destination(A6, "2001:db8::11", 3868, m.FWD_LOCAL, 65535, active_conns=2**31 - 1,
                    stats=_st(7))]),
]
DAEMONS = [m.Daemon(m.DAEMON_MASTER, 'sync"0', 3, 1472, "224.0.0.81", 8848, 1)]


def snapshot(table=TABLE, daemons=DAEMONS) -> metrics.Snapshot:
    return metrics.Snapshot(m.Info(0x010201, 4096), table, m.Timeouts(900, 120, 300), daemons)


def text_of(snap: metrics.Snapshot) -> str:
    out = io.StringIO()
    metrics.write(snap, out)
    return out.getvalue()


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, frozenset of labels): value} of a document; fails on a repeat."""
    got: dict[tuple, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in got, f"label set repeated: {key}"
            got[key] = s.value
    return got


def exact_values(text: str) -> dict[tuple, int]:
    """The same, read as exact integers from the text (the parser gives floats)."""
    got = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            got[name_labels] = value
    return got


def _real(svc_family, proto, addr, port, fwmark, sched, raddr, rport, fwd):
    return frozenset({"family": svc_family, "protocol": proto, "address": addr, "port": port,
                      "fwmark": fwmark, "scheduler": sched, "real_address": raddr,
                      "real_port": rport, "forward": fwd}.items())


def test_every_value_and_label_read_back_by_prometheus_client():
    text = text_of(snapshot())
    got = samples(text)
    svc = frozenset({"family": "inet", "protocol": "tcp", "address": "192.0.2.10", "port": "80",
                     "fwmark": "", "scheduler": "wlc"}.items())
    assert got[("ipvs_service_connections_total", svc)] == 1000
    assert got[("ipvs_service_outgoing_bytes_total", svc)] == 500_000
    assert got[("ipvs_service_active_connections", svc)] == 4
    assert got[("ipvs_service_inactive_connections", svc)] == 11
    assert got[("ipvs_service_weight", svc)] == 3
    assert got[("ipvs_service_real_servers", svc)] == 2
    r1 = _real("inet", "tcp", "192.0.2.10", "80", "", "wlc", "198.51.100.1", "80", "masq")
    assert got[("ipvs_real_server_incoming_packets_total", r1)] == 4200
    assert got[("ipvs_real_server_connections_per_second", r1)] == 600 % 13
    assert got[("ipvs_real_server_persistent_connections", r1)] == 1
    r2 = _real("inet", "tcp", "192.0.2.10", "80", "", "wlc", "198.51.100.2", "8080", "masq")
    assert got[("ipvs_real_server_weight", r2)] == 0
    # fwmark services of both families: distinct label sets, empty protocol/address/port
    for fam in ("inet", "inet6"):
        key = frozenset({"family": fam, "protocol": "", "address": "", "port": "", "fwmark": "5",
                         "scheduler": "mh" if fam == "inet" else "dh"}.items())
        assert ("ipvs_service_connections_total", key) in got
    # a mixed-family tunnel and a real server read without counters
    mixed = _real("inet6", "", "", "", "5", "dh", "198.51.100.8", "0", "route")
    assert got[("ipvs_real_server_connections_total", mixed)] == 0
    # escaped label values come back as they were
    odd = _real("inet6", "sctp", "2001:db8::10", "3868", "", 'odd"sched\\', "2001:db8::11", "3868",
                "local")
    assert got[("ipvs_real_server_active_connections", odd)] == 2**31 - 1
    info = got[("ipvs_sync_daemon_info", frozenset({
        "role": "master", "interface": 'sync"0', "syncid": "3", "group": "224.0.0.81",
        "port": "8848", "ttl": "1", "maxlen": "1472"}.items()))]
    assert info == 1
    assert got[("ipvs_sync_daemon_running", frozenset({("role", "backup")}))] == 0
    assert got[("ipvs_timeout_seconds", frozenset({("timeout", "tcp_fin")}))] == 120
    assert got[("ipvs_connection_table_size", frozenset())] == 4096
    assert got[("ipvs_scrape_success", frozenset())] == 1
    # 14 values per real server, 16 per service
    n_dests = sum(len(d) for _, d in TABLE)
    assert sum(1 for k in got if k[0].startswith("ipvs_real_server_")) == 14 * n_dests
    assert sum(1 for k in got if k[0].startswith("ipvs_service_")) == 15 * len(TABLE)


def test_counters_are_exact_integers_past_float_precision():
    values = exact_values(text_of(snapshot()))
    key = ('ipvs_real_server_connections_total{family="inet6",protocol="",address="",port="",'
           'fwmark="5",scheduler="dh",real_address="2001:db8::5",real_port="0",forward="tunnel"}')
    assert values[key] == str(BIG)  # a float would print 1.8446744073709552e+19


def test_same_document_as_prometheus_clients_own_writer():
    """The same families built with prometheus_client and written by
    generate_latest read back to the same samples, HELP and TYPE."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import CollectorRegistry

    table = [e for e in TABLE if e[0].key.fwmark != 5 or e[0].key.af == A4]  # floats: no BIG
    ours = text_of(snapshot(table))
    families = list(text_string_to_metric_families(ours))

    class Same:
        def collect(self):
            for fam in families:
                if fam.name.startswith("ipvs_scrape"):
                    continue
                label_names = sorted(fam.samples[0].labels) if fam.samples else []
                cls = CounterMetricFamily if fam.type == "counter" else GaugeMetricFamily
                f = cls(fam.name, fam.documentation, labels=label_names)
                for s in fam.samples:
                    f.add_metric([s.labels[k] for k in label_names], s.value)
                yield f

    registry = CollectorRegistry()
    registry.register(Same())
    theirs = generate_latest(registry).decode()

    def shape(text):
        return {(f.name, f.type, f.documentation,
                 frozenset((s.name, frozenset(s.labels.items()), s.value) for s in f.samples))
                for f in text_string_to_metric_families(text) if not f.name.startswith("ipvs_scrape")}

    assert shape(ours) == shape(theirs)

    def lines(text):
        """Line for line, but for the value spelling (theirs: floats) and the
        label order (theirs: sorted)."""
        out = []
        for line in text.splitlines():
            if "ipvs_scrape" in line:
                continue
            if line.startswith("#"):
                out.append(line)
                continue
            (fam,) = text_string_to_metric_families(line + "\n")
            (s,) = fam.samples
            out.append((s.name, sorted(s.labels.items()), s.value))
        return out

    assert lines(ours) == lines(theirs)


def _promtool() -> str:
    found = shutil.which("promtool") or str(Path(__file__).resolve().parents[2] / ".tools/bin/promtool")
    assert Path(found).exists(), "promtool is missing: run scripts/setup (it fetches it into .tools/)"
    return found


def promtool_check(text: str) -> subprocess.CompletedProcess:
    return subprocess.run([_promtool(), "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=120)


def test_promtool_accepts_the_document():
    r = promtool_check(text_of(snapshot()))
    assert r.returncode == 0 and r.stdout == r.stderr == "", (r.stdout, r.stderr)


def test_promtool_would_notice():
    """The check is not vacuous: promtool refuses the document with one
    label value left unescaped, and flags a counter named without _total.
    (It does not notice a repeated label set: samples() above does.)"""
    text = text_of(snapshot())
    assert 'scheduler="odd\\"sched\\\\"' in text
    r = promtool_check(text.replace('scheduler="odd\\"sched\\\\"', 'scheduler="odd"sched\\"'))
    assert r.returncode != 0 and "parsing error" in r.stderr
    r = promtool_check("# HELP x_bytes a\n# TYPE x_bytes counter\nx_bytes 1\n")
    assert r.returncode != 0 and "_total" in r.stdout + r.stderr


def test_a_failed_read_is_a_document_that_says_so():
    snap = metrics.Snapshot(error="Protocol not available")
    text = text_of(snap)
    got = samples(text)
    assert got[("ipvs_scrape_success", frozenset())] == 0
    assert {k[0] for k in got} == {"ipvs_scrape_success", "ipvs_scrape_duration_seconds"}
    assert "# ipvsctl: reading the IPVS table failed: Protocol not available" in text
    assert promtool_check(text).returncode == 0


def test_empty_table():
    got = samples(text_of(snapshot([], [])))
    assert not any(k[0].startswith("ipvs_service_") for k in got)
    assert got[("ipvs_scrape_success", frozenset())] == 1


def test_streamed_in_bounded_pieces():
    big = [(m.Service(m.ServiceKey(A4, m.IPPROTO_TCP, f"10.0.{i // 256}.{i % 256}", 80), "rr",
                      stats=_st(i)),
            [m.Destination(A4, f"10.1.{i // 256}.{i % 256}", 80, m.FWD_MASQ, 1, stats=_st(i))])
           for i in range(600)]
    pieces = list(metrics.exposition(snapshot(big, [])))
    assert max(p.count("\n") for p in pieces) <= metrics.LINES_PER_PIECE + 2
    assert all(p.endswith("\n") for p in pieces)
    # 15 values per service, 14 per real server; version, table size, 3 timeouts,
    # 2 sync daemon roles, scrape success and duration
    assert len(samples("".join(pieces))) == 600 * (15 + 14) + 9


# --------------------------------------------------------------------------
# The HTTP endpoint, with a fake backend
# --------------------------------------------------------------------------


class FakeBackend:
    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.reads = 0
        self.closed = False

    def info(self):
        return m.Info(0x010201, 4096)

    def table(self, counters=True):
        self.reads += 1
        time.sleep(self.delay)
        return TABLE

    def timeouts(self):
        return m.Timeouts(900, 120, 300)

    def daemons(self):
        return []

    def close(self):
        self.closed = True


@pytest.fixture
def serve():
    started = []

    def start(backend, wait=5.0):
        server, scraper = metrics_http.make_server("127.0.0.1:0", lambda: backend, wait)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append(server)
        return server.server_address[1]

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def get(port: int, path: str = "/metrics", method: str = "GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()
    finally:
        conn.close()


def test_http_scrape_reads_afresh_each_time(serve):
    backend = FakeBackend()
    port = serve(backend)
    for n in (1, 2):
        status, ctype, body = get(port)
        assert status == 200 and ctype == metrics.CONTENT_TYPE
        assert samples(body)[("ipvs_scrape_success", frozenset())] == 1
        assert backend.reads == n
    assert get(port, "/")[0] == 200
    assert get(port, "/nope")[0] == 404
    status, _, body = get(port, method="HEAD")
    assert (status, body) == (200, "") and backend.reads == 2  # HEAD reads nothing
    # keep-alive: two scrapes on one connection (nothing stray after a response)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for method in ("HEAD", "GET", "GET"):
            conn.request(method, "/metrics")
            r = conn.getresponse()
            assert r.status == 200 and (r.read() == b"") == (method == "HEAD")
    finally:
        conn.close()
    assert backend.reads == 4


def test_http_reads_are_serialised_and_bounded(serve):
    backend = FakeBackend(delay=1.5)
    port = serve(backend, wait=0.3)
    results = []
    first = threading.Thread(target=lambda: results.append(get(port)[0]))
    first.start()
    time.sleep(0.5)  # the first scrape is reading now
    assert get(port)[0] == 503  # the second waited 0.3 s for its turn, then gave up
    first.join()
    assert results == [200] and backend.reads == 1


def test_http_failed_read_answers_with_success_0(serve):
    from ipvsctl.backend import KernelError

    class Broken(FakeBackend):
        def table(self, counters=True):
            raise KernelError(11, "get_services")

    port = serve(Broken())
    status, _, body = get(port)
    assert status == 200
    assert samples(body)[("ipvs_scrape_success", frozenset())] == 0


@pytest.mark.parametrize("text,want", [
    ("127.0.0.1:9720", ("127.0.0.1", 9720)),
    (":9720", ("0.0.0.0", 9720)),
    ("[::1]:9720", ("::1", 9720)),
])
def test_listen_addresses(text, want):
    host, port, _ = metrics_http.parse_listen(text)
    assert (host, port) == want


@pytest.mark.parametrize("text", ["9720", "localhost:9720", "::1:9720", "127.0.0.1:70000", "1.2.3.4:"])
def test_bad_listen_addresses(text):
    with pytest.raises(ValueError):
        metrics_http.parse_listen(text)
