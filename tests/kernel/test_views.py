"""The views for programs and people, against a real kernel.

* JSON round trip: a table with every feature (IPv4, IPv6, fwmark of both
  families, persistence with netmask and a persistence engine, one-packet,
  scheduler flags, thresholds, weight 0, every forwarding method and tunnel
  type, a mixed-family tunnel) is built by the real ipvsadm in one
  namespace, listed by `ipvsctl -Ln --json`, restored by `ipvsctl restore
  --json` into a fresh namespace, and both tables are read back by ipvsadm.
* After real traffic the JSON counters equal the kernel's exact counters
  (`ipvsadm -Ln --stats --exact`), and `-Lnc --json` lists the connections
  ipvsadm lists.
* `--netns` reaches the named table and no other.

ipvsctl runs in-process where it can (a Python start costs ~100 ms+ under
User-Mode Linux); a few checks spawn `python -m ipvsctl` to cover the entry
point.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import time

from nsutil import NetNS, run_ipvsadm, run_ipvsctl, wait_for

from ipvsctl.commands.group import run_app
from ipvsctl.cli import run_compat
from ipvsctl.commands import SUBCOMMANDS

# Every feature ipvsadm can set, as one -R stream.  Real servers in
# 198.51.100.0/24 need a route in the namespace (the kernel refuses a
# non-unicast destination): _give_routes adds one.
FULL_TABLE = """\
-A -t 192.0.2.10:80 -s wlc -p 300 -M 255.255.255.0
-a -t 192.0.2.10:80 -r 198.51.100.1:80 -m -w 3 -x 100 -y 20
-a -t 192.0.2.10:80 -r 198.51.100.2:8080 -m -w 0
-a -t 192.0.2.10:80 -r 198.51.100.3:80 -g -w 5
-A -u 192.0.2.53:53 -s rr -o
-A -u 192.0.2.20:5060 -s wrr -p 60 --pe sip
-a -u 192.0.2.20:5060 -r 198.51.100.4:5060 -m -w 2
-A --sctp-service 192.0.2.11:3868 -s lc
-a --sctp-service 192.0.2.11:3868 -r 198.51.100.5:3868 -g
-A -t [2001:db8::10]:443 -s sh -b sh-fallback,sh-port -p 120 -M 64
-a -t [2001:db8::10]:443 -r [2001:db8::11]:443 -m -w 4 -x 50 -y 10
-a -t [2001:db8::10]:443 -r [2001:db8::12]:443 -i --tun-type gue --tun-port 6080 --tun-remcsum
-A -f 5 -s mh -b mh-port
-a -f 5 -r 198.51.100.6 -i --tun-type ipip -w 2
-a -f 5 -r 198.51.100.7 -i --tun-type gre --tun-csum -x 7 -y 3
-A -f 5 -6 -s dh
-a -f 5 -6 -r 2001:db8::5 -i --tun-type gue --tun-port 7000 --tun-csum
-a -f 5 -6 -r 198.51.100.8 -i --tun-type gre --tun-nocsum
-A -f 4294967295 -s wrr
-a -f 4294967295 -r 198.51.100.9 -g -w 65535
"""

READ_BACK = (["-Sn"], ["-Ln"], ["-Ln", "--thresholds"], ["-Ln", "--tun-info"],
             ["-Ln", "--persistent-conn"])


def _give_routes(*spaces: NetNS) -> None:
    for ns in spaces:
        ns.ip("link add views0 type dummy", "link set views0 up",
              "addr add 198.51.100.254/24 dev views0", "addr add 2001:db8::fe/64 dev views0 nodad")


def ipvsctl(ns: NetNS | None, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """ipvsctl in-process: a subcommand through the click app, else the compat path.

    With ``ns`` the thread moves into it (as if started there); without,
    only ``--netns`` in args picks a namespace.
    """
    out, err = io.StringIO(), io.StringIO()
    ctx = ns.enter() if ns is not None else contextlib.nullcontext()
    with ctx:
        if args and args[0] in SUBCOMMANDS:
            import sys

            saved = sys.stdin
            sys.stdin = io.StringIO(stdin)
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    status = run_app(list(args), "ipvsctl")
            finally:
                sys.stdin = saved
        else:
            status = run_compat(list(args), io.StringIO(stdin), out, err)
    return status, out.getvalue(), err.getvalue()


def _ipvsadm(ns: NetNS, *args: str, input: str | None = None) -> str:
    r = run_ipvsadm(ns, *args, input=input)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def _thread_netns() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


# --------------------------------------------------------------------------
# JSON round trip through a second namespace
# --------------------------------------------------------------------------


def test_json_round_trip_recreates_every_feature(netns_pair, tmp_path):
    src, dst = netns_pair
    _give_routes(src, dst)
    _ipvsadm(src, "-R", input=FULL_TABLE)
    assert len(_ipvsadm(src, "-Sn").splitlines()) == FULL_TABLE.count("\n")

    # The entry point, spawned once: `python -m ipvsctl -Ln --json --netns SRC`.
    r = run_ipvsctl(src, "-Ln", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["services"]) == 8
    path = tmp_path / "table.json"
    path.write_text(r.stdout)

    home = _thread_netns()
    status, out, err = ipvsctl(None, "restore", "--json", str(path), "--netns", dst.name)
    assert (status, out, err) == (0, "", "")
    assert _thread_netns() == home  # --netns moved only the socket, not this thread

    for view in READ_BACK:
        assert _ipvsadm(dst, *view) == _ipvsadm(src, *view), view
    # and ipvsctl's own reading of the copy is the same document
    status, out, _ = ipvsctl(None, "-Ln", "--json", "--netns", dst.name)
    assert status == 0 and json.loads(out) == doc


def test_json_document_agrees_with_ipvsadm(netns):
    """Field by field, the document says what ipvsadm's listings say."""
    _give_routes(netns)
    _ipvsadm(netns, "-R", input=FULL_TABLE)
    status, out, _ = ipvsctl(netns, "-Ln", "--json")
    assert status == 0
    doc = json.loads(out)
    by_vip = {(s["protocol"], s["address"], s["port"], s["fwmark"], s["family"]): s
              for s in doc["services"]}
    tcp = by_vip[("tcp", "192.0.2.10", 80, None, "inet")]
    assert (tcp["scheduler"], tcp["persistent"], tcp["timeout"], tcp["netmask"]) == (
        "wlc", True, 300, "255.255.255.0")
    d = {x["address"]: x for x in tcp["destinations"]}
    assert (d["198.51.100.1"]["forward"], d["198.51.100.1"]["weight"],
            d["198.51.100.1"]["u_threshold"], d["198.51.100.1"]["l_threshold"]) == ("masq", 3, 100, 20)
    assert (d["198.51.100.2"]["port"], d["198.51.100.2"]["weight"]) == (8080, 0)
    assert d["198.51.100.3"]["forward"] == "route"
    sip = by_vip[("udp", "192.0.2.20", 5060, None, "inet")]
    assert (sip["pe"], sip["persistent"], sip["timeout"]) == ("sip", True, 60)
    assert by_vip[("udp", "192.0.2.53", 53, None, "inet")]["one_packet"] is True
    v6 = by_vip[("tcp", "2001:db8::10", 443, None, "inet6")]
    assert (v6["sched_flags"], v6["netmask"]) == (["sh-fallback", "sh-port"], 64)
    assert [x["tunnel"] for x in v6["destinations"]] == [
        None, {"type": "gue", "port": 6080, "checksum": "remcsum"}]
    fwm4 = by_vip[(None, None, None, 5, "inet")]
    assert fwm4["sched_flags"] == ["mh-port"]
    assert [(x["address"], x["tunnel"]) for x in fwm4["destinations"]] == [
        ("198.51.100.6", {"type": "ipip", "port": 0, "checksum": "nocsum"}),
        ("198.51.100.7", {"type": "gre", "port": 0, "checksum": "csum"})]
    fwm6 = by_vip[(None, None, None, 5, "inet6")]
    assert sorted((x["family"], x["tunnel"]["type"]) for x in fwm6["destinations"]) == [
        ("inet", "gre"), ("inet6", "gue")]
    assert by_vip[(None, None, None, 4294967295, "inet")]["destinations"][0]["weight"] == 65535

    # every list mode prints the same document; -L -t picks one service
    for mode in (["--stats"], ["--rate"], ["--thresholds"], ["--persistent-conn"], ["--tun-info"],
                 ["--exact"]):
        status, out2, _ = ipvsctl(netns, "-Ln", *mode, "--json")
        assert status == 0 and json.loads(out2) == doc, mode
    status, out, _ = ipvsctl(netns, "-L", "-n", "-t", "[2001:db8::10]:443", "--json")
    assert [s["address"] for s in json.loads(out)["services"]] == ["2001:db8::10"]
    status, out, err = ipvsctl(netns, "-L", "-n", "-t", "192.0.2.99:80", "--json")
    assert (status, out, err) == (1, "", "No such service\n")

    # the service order is ipvsadm's (which prints marks of 2^31 and more as negative)
    listed = [line.split()[1] for line in _ipvsadm(netns, "-Ln").splitlines()[3:]
              if not line.startswith("  ->")]
    listed = [str(int(x) & 0xFFFFFFFF) if x.lstrip("-").isdigit() else x for x in listed]
    ours = [str(s["fwmark"]) if s["fwmark"] else
            (f"[{s['address']}]:{s['port']}" if s["family"] == "inet6" else f"{s['address']}:{s['port']}")
            for s in doc["services"]]
    assert ours == listed


def test_restore_json_refuses_bad_input_and_reports_kernel_refusals(netns_pair, tmp_path):
    src, dst = netns_pair
    _give_routes(src, dst)
    _ipvsadm(src, "-R", input=FULL_TABLE)
    status, out, _ = ipvsctl(src, "-Ln", "--json")
    doc = json.loads(out)

    bad = json.loads(out)
    bad["services"][-1]["destinations"][0]["weight"] = "heavy"
    status, _, err = ipvsctl(dst, "restore", "--json", stdin=json.dumps(bad))
    assert status == 2 and "services[7].destinations[0].weight: expected an integer" in err
    assert _ipvsadm(dst, "-Sn") == ""  # nothing was changed

    # restoring over an existing table: every request refused, each reported
    status, _, err = ipvsctl(src, "restore", "--json", stdin=out)
    assert status == 255
    lines = err.splitlines()
    total = len(doc["services"]) + sum(len(s["destinations"]) for s in doc["services"])
    assert total == 20 and len(lines) == total + 1
    assert lines[0] == "restore: services[0] (FWM 4294967295): Service already exists"
    assert lines[1] == ("restore: services[0].destinations[0] (FWM 4294967295 -> 198.51.100.9:0): "
                        "Destination already exists")
    assert lines[-1] == f"restore: {total} of {total} requests failed; none was applied"

    # --flush: the same document replaces the table
    _ipvsadm(dst, "-A", "-t", "192.0.2.99:80")
    status, _, err = ipvsctl(dst, "restore", "--json", "--flush", stdin=out)
    assert (status, err) == (0, "")
    assert _ipvsadm(dst, "-Sn") == _ipvsadm(src, "-Sn")
    assert len(doc["services"]) == 8


# --------------------------------------------------------------------------
# Counters after real traffic
# --------------------------------------------------------------------------


def _exact_stats(ns: NetNS) -> dict:
    """address -> [conns, inpkts, outpkts, inbytes, outbytes] from ipvsadm --stats --exact."""
    stats = {}
    for line in _ipvsadm(ns, "-Ln", "--stats", "--exact").splitlines()[3:]:
        f = line.split()
        if f and f[0] == "->":
            stats[f[1]] = list(map(int, f[2:7]))
        elif f:
            stats[f[1]] = list(map(int, f[2:7]))
    return stats


def _json_stats(doc: dict) -> dict:
    keys = ("conns", "inpkts", "outpkts", "inbytes", "outbytes")
    stats = {}
    for s in doc["services"]:
        stats[f"{s['address']}:{s['port']}"] = [s["stats"][k] for k in keys]
        for d in s["destinations"]:
            stats[f"{d['address']}:{d['port']}"] = [d["stats"][k] for k in keys]
    return stats


def test_json_counters_equal_the_kernels_exact_counters(traffic_topology):
    topo = traffic_topology
    d = topo.director
    vip = f"{topo.vip}:80"
    _ipvsadm(d, "-A", "-t", vip, "-s", "rr")
    for a in topo.backend_addrs:
        _ipvsadm(d, "-a", "-t", vip, "-r", f"{a}:80", "-m")
    assert topo.get(30) == {"backend1": 10, "backend2": 10, "backend3": 10}

    # The kernel folds per-CPU counters in on its 2 s estimator tick, and the
    # last FIN/ACKs may still be counted: accept the first moment when two
    # ipvsadm readings around the JSON one agree with it.
    def agree():
        before = _exact_stats(d)
        status, out, _ = ipvsctl(d, "-Ln", "--json")
        after = _exact_stats(d)
        ours = _json_stats(json.loads(out))
        if before != after or before[vip][0] != 30:
            return None
        return (before, ours)

    theirs, ours = wait_for(agree, timeout=10, interval=0.5, what="stable counters")
    assert ours == theirs
    assert ours[vip][0] == 30 and all(v > 0 for v in ours[vip])
    assert sorted(v[0] for k, v in ours.items() if k != vip) == [10, 10, 10]

    # the same through `ipvsctl list --json`
    status, out, _ = ipvsctl(d, "list", "--json")
    assert status == 0 and _json_stats(json.loads(out)) == theirs

    # -Lnc --json lists the connections ipvsadm lists (expiry times tick on)
    def conns_agree():
        text = _ipvsadm(d, "-Lnc").splitlines()[2:]
        status, out, _ = ipvsctl(d, "-Lnc", "--json")
        theirs = sorted((f[0], f[2], f[3], f[4], f[5]) for f in (x.split() for x in text))
        ours = sorted((c["protocol"].upper(), c["state"], f"{c['client_address']}:{c['client_port']}",
                       f"{c['virtual_address']}:{c['virtual_port']}",
                       f"{c['destination_address']}:{c['destination_port']}")
                      for c in json.loads(out)["connections"])
        return theirs == ours and len(ours) == 30

    wait_for(conns_agree, timeout=5, interval=0.5, what="the same 30 connections")


def test_watch_shows_live_rates(traffic_topology):
    topo = traffic_topology
    d = topo.director
    vip = f"{topo.vip}:80"
    _ipvsadm(d, "-A", "-t", vip, "-s", "rr")
    for a in topo.backend_addrs:
        _ipvsadm(d, "-a", "-t", vip, "-r", f"{a}:80", "-m")
    answers: list = []
    # Traffic from another thread (it moves itself into the client namespace).
    sender = threading.Thread(target=lambda: answers.extend(topo.requests(400, deadline=12)))
    sender.start()
    try:
        time.sleep(0.5)
        status, out, err = ipvsctl(None, "watch", "--iterations", "2", "--interval", "2.5",
                                   "--netns", d.name, "--width", "100")
    finally:
        sender.join(timeout=30)
    assert status == 0, err
    frames = out.split(f"netns {d.name}: every 2.5s at ")
    assert len(frames) == 3
    last = frames[2].splitlines()
    row = next(line for line in last if line.startswith(f"TCP {vip}"))
    conn_rate = row.split()[2]
    assert conn_rate not in ("0", "-"), out  # connections per second while traffic ran
    assert sum(1 for line in last if line.startswith("  198.18.")) == 3


# --------------------------------------------------------------------------
# --netns
# --------------------------------------------------------------------------


def test_netns_reaches_the_named_table_and_no_other(netns_pair, tmp_path):
    a, b = netns_pair
    _ipvsadm(a, "-A", "-t", "192.0.2.1:80", "-s", "rr")
    _ipvsadm(b, "-A", "-u", "192.0.2.2:53", "-s", "wrr")
    home = _thread_netns()

    status, out, _ = ipvsctl(None, "list", "--json", "--netns", a.name)
    assert [s["address"] for s in json.loads(out)["services"]] == ["192.0.2.1"]
    status, out, _ = ipvsctl(None, "ls", "--netns", b.name, "--no-color")
    assert out.startswith("UDP 192.0.2.2:53  wrr  no real servers")
    status, out, _ = ipvsctl(None, "-Ln", "--json", "--netns", b.name)
    assert [s["protocol"] for s in json.loads(out)["services"]] == ["udp"]

    doc = {"services": [{"protocol": "sctp", "address": "192.0.2.3", "port": 9}]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    status, _, err = ipvsctl(None, "restore", "--json", str(path), "--netns", a.name)
    assert (status, err) == (0, "")
    assert _ipvsadm(a, "-Sn") == "-A -t 192.0.2.1:80 -s rr\n-A --sctp-service 192.0.2.3:9 -s wlc\n"
    assert _ipvsadm(b, "-Sn") == "-A -u 192.0.2.2:53 -s wrr\n"  # untouched
    assert _thread_netns() == home
    # (the root namespace's table is checked untouched by the session guard)


def test_missing_netns_is_a_clear_error(netns):
    r = run_ipvsctl(netns, "list", "--netns", "ipvsctl-no-such-ns")
    assert r.returncode == 2
    assert r.stderr == ("ipvsctl: network namespace 'ipvsctl-no-such-ns' not found "
                        "(/run/netns/ipvsctl-no-such-ns); `ip netns list` shows the names\n")
    assert r.stdout == ""
    for sub in (["watch", "--once"], ["restore", "--json", "/dev/null"]):
        status, _, err = ipvsctl(None, *sub, "--netns", "ipvsctl-no-such-ns")
        if sub[0] == "restore":
            assert status == 2 and "not valid JSON" in err  # the input is checked first
        else:
            assert status == 2 and "network namespace 'ipvsctl-no-such-ns' not found" in err
