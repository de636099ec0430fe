"""`ipvsctl metrics` against a real kernel, after real traffic.

* Every counter it exports equals what `ipvsadm -Ln --stats --exact` reads
  from the same table, and every counter ipvsadm shows is exported (IPv4,
  IPv6 and fwmark services of both families).
* promtool (Debian's) accepts the document.
* `--listen` answers a real HTTP client (curl), reads afresh per scrape,
  and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from nsutil import NetNS, run_ipvsadm, wait_for
from prometheus_client.parser import text_string_to_metric_families

from ipvsctl.commands.group import run_app

COUNTERS = ("connections_total", "incoming_packets_total", "outgoing_packets_total",
            "incoming_bytes_total", "outgoing_bytes_total")
PROMTOOL = shutil.which("promtool") or str(Path(__file__).resolve().parents[2] / ".tools/bin/promtool")


def _ipvsadm(ns: NetNS, *args: str) -> str:
    r = run_ipvsadm(ns, *args)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def ipvsadm_exact(ns: NetNS) -> dict[tuple, list[int]]:
    """{(service name[, real server]): [conns, inpkts, outpkts, inbytes, outbytes]}
    from `ipvsadm -Ln --stats --exact`; names as ipvsadm writes them."""
    got, service = {}, None
    for line in _ipvsadm(ns, "-Ln", "--stats", "--exact").splitlines()[3:]:
        f = line.split()
        if f[0] == "->":
            got[(service, f[1])] = list(map(int, f[2:7]))
        elif f[0] == "FWM":
            v6 = f[2] == "IPv6"
            service = f"FWM {f[1]}" + (" IPv6" if v6 else "")
            got[(service,)] = list(map(int, f[3:8] if v6 else f[2:7]))
        else:
            service = f"{f[0]} {f[1]}"
            got[(service,)] = list(map(int, f[2:7]))
    return got


def _host_port(family: str, addr: str, port: str) -> str:
    return f"[{addr}]:{port}" if family == "inet6" else f"{addr}:{port}"


def metrics_exact(text: str) -> dict[tuple, list[int]]:
    """The same map from our document (values read as exact integers)."""
    got: dict[tuple, list[int | None]] = {}
    names = {f"ipvs_{scope}_{c}": (scope, i) for scope in ("service", "real_server")
             for i, c in enumerate(COUNTERS)}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name not in names:
                continue
            scope, i = names[s.name]
            lab = s.labels
            if lab["fwmark"]:
                service = f"FWM {lab['fwmark']}" + (" IPv6" if lab["family"] == "inet6" else "")
            else:
                service = f"{lab['protocol'].upper()} {_host_port(lab['family'], lab['address'], lab['port'])}"
            if scope == "service":
                key = (service,)
            else:
                real_family = "inet6" if ":" in lab["real_address"] else "inet"
                key = (service, _host_port(real_family, lab["real_address"], lab["real_port"]))
            got.setdefault(key, [None] * 5)[i] = _exact(text, s)
    return got


def _exact(text: str, sample) -> int:
    # The parser returns floats: the counters here are far below 2**53, so
    # the float is exact (the unit tests check digits past that).
    value = int(sample.value)
    assert float(value) == sample.value
    return value


def metrics_text(ns: NetNS) -> str:
    out, err = io.StringIO(), io.StringIO()
    with ns.enter(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = run_app(["metrics"], "ipvsctl")
    assert status == 0, err.getvalue()
    return out.getvalue()


def _table(topo) -> None:
    d = topo.director
    vip, vip6 = f"{topo.vip}:80", f"[{topo.vip6}]:80"
    _ipvsadm(d, "-A", "-t", vip, "-s", "rr")
    for a in topo.backend_addrs:
        _ipvsadm(d, "-a", "-t", vip, "-r", f"{a}:80", "-m")
    _ipvsadm(d, "-A", "-t", vip6, "-s", "wrr")
    for i, a in enumerate(topo.backend_addrs6):
        _ipvsadm(d, "-a", "-t", vip6, "-r", f"[{a}]:80", "-m", "-w", str(i + 1))
    # fwmark services of both families with the same mark, and an empty one
    _ipvsadm(d, "-A", "-f", "7", "-s", "sh")
    _ipvsadm(d, "-a", "-f", "7", "-r", topo.backend_addrs[0], "-g", "-w", "0")
    _ipvsadm(d, "-A", "-f", "7", "-6", "-s", "mh")
    _ipvsadm(d, "-a", "-f", "7", "-6", "-r", topo.backend_addrs6[1], "-g")
    _ipvsadm(d, "-A", "-u", f"{topo.vip}:53", "-s", "rr")


def test_every_counter_equals_ipvsadm_exact_after_traffic(traffic_topology):
    topo = traffic_topology
    d = topo.director
    _table(topo)
    assert topo.get(30) == {"backend1": 10, "backend2": 10, "backend3": 10}
    assert sum(topo.get(12, family=6).values()) == 12

    # The kernel folds its per-CPU counters in on the 2 s estimator tick and
    # the last FIN/ACKs may still be counted: take the first moment at which
    # two ipvsadm readings around ours agree.
    def agree():
        before = ipvsadm_exact(d)
        text = metrics_text(d)
        after = ipvsadm_exact(d)
        if before != after or before[(f"TCP {topo.vip}:80",)][0] != 30 \
                or before[(f"TCP [{topo.vip6}]:80",)][0] != 12:
            return None
        return before, text

    theirs, text = wait_for(agree, timeout=15, interval=0.5, what="stable counters")
    ours = metrics_exact(text)
    assert ours == theirs  # every counter, both ways, exactly
    assert len(ours) == 5 + 8  # 5 services, 8 real servers
    assert ours[(f"TCP {topo.vip}:80",)][0] == 30 and all(ours[(f"TCP {topo.vip}:80",)])
    assert ours[(f"TCP [{topo.vip6}]:80",)][0] == 12

    # the rest of the document agrees with ipvsadm's other views
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    weights = {(s.labels["fwmark"], s.labels["family"], s.labels["real_address"]): s.value
               for s in fams["ipvs_real_server_weight"].samples}
    assert weights[("7", "inet", topo.backend_addrs[0])] == 0
    assert weights[("", "inet6", topo.backend_addrs6[2])] == 3
    inact = {_host_port("inet6" if ":" in s.labels["real_address"] else "inet",
                        s.labels["real_address"], s.labels["real_port"]): s.value
             for s in fams["ipvs_real_server_inactive_connections"].samples if s.labels["protocol"] == "tcp"}
    listed = {}
    for line in _ipvsadm(d, "-Ln").splitlines()[3:]:
        f = line.split()
        if f[0] == "->" and not f[1].endswith(":0"):
            listed[f[1]] = int(f[5])
    assert inact == listed and sum(inact.values()) == 42
    timeouts = _ipvsadm(d, "-L", "--timeout").split(":")[1].split()
    got = {s.labels["timeout"]: s.value for s in fams["ipvs_timeout_seconds"].samples}
    assert [got["tcp"], got["tcp_fin"], got["udp"]] == list(map(float, timeouts))
    assert fams["ipvs_scrape_success"].samples[0].value == 1

    # promtool accepts the real document
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout == r.stderr == "", (r.stdout, r.stderr)


def _serve(ns: NetNS) -> tuple[subprocess.Popen, int]:
    """`ipvsctl metrics --listen 127.0.0.1:0 --netns NS`, started from the
    root namespace (so the socket listens there); returns it and its port."""
    p = subprocess.Popen([sys.executable, "-m", "ipvsctl", "metrics", "--listen", "127.0.0.1:0",
                          "--netns", ns.name], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    fd, line, deadline = p.stderr.fileno(), b"", time.monotonic() + 30
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            p.kill()
            raise AssertionError(f"metrics --listen did not start: {line!r}")
        line += chunk
    match = re.search(rb"serving http://127\.0\.0\.1:(\d+)/metrics", line)
    assert match, line
    return p, int(match.group(1))


def _curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "30", *args], capture_output=True, text=True,
                          timeout=60)


def test_http_endpoint_answers_curl_and_reads_afresh(traffic_topology):
    topo = traffic_topology
    d = topo.director
    _table(topo)
    server, port = _serve(d)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        r = _curl("-i", url)
        assert r.returncode == 0, r.stderr
        head, _, body = r.stdout.partition("\n\n")  # text mode: \r\n read as \n
        assert head.startswith("HTTP/1.1 200")
        assert "Content-Type: text/plain; version=0.0.4; charset=utf-8" in head
        first = metrics_exact(body)
        assert first[(f"TCP {topo.vip}:80",)][0] == 0

        # traffic, then a scrape that shows it: each scrape reads the kernel
        assert sum(topo.get(9).values()) == 9

        def counted():
            r = _curl("-f", url)
            return r.returncode == 0 and metrics_exact(r.stdout)[(f"TCP {topo.vip}:80",)][0] == 9

        wait_for(counted, timeout=15, interval=0.5, what="the scrape to count 9 connections")
        r = _curl("-f", url)
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=r.stdout, capture_output=True,
                               text=True, timeout=120)
        assert check.returncode == 0 and check.stdout == check.stderr == ""
        assert _curl("-s", "-o", "/dev/null", "-w", "%{http_code}",
                     f"http://127.0.0.1:{port}/nope").stdout == "404"
    finally:
        server.send_signal(signal.SIGTERM)
        status = server.wait(timeout=30)
        server.stderr.close()
    assert status == 0


def test_metrics_command_failure_modes(netns, tmp_path):
    # a namespace that does not exist: bad input, nothing written
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
        status = run_app(["metrics", "--netns", "ipvsctl-no-such-ns"], "ipvsctl")
    assert status == 2 and out.getvalue() == ""
    assert "network namespace 'ipvsctl-no-such-ns' not found" in err.getvalue()
    # --output: the file is replaced whole
    path = tmp_path / "ipvs.prom"
    path.write_text("old\n")
    _ipvsadm(netns, "-A", "-t", "192.0.2.1:80", "-s", "rr")
    with netns.enter():
        status = run_app(["metrics", "-o", str(path)], "ipvsctl")
    assert status == 0
    text = path.read_text()
    assert 'ipvs_service_connections_total{family="inet",protocol="tcp",address="192.0.2.1",port="80",' \
           'fwmark="",scheduler="rr"} 0' in text
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
