"""diff, apply and drain against the real kernel, through the command line.

Each test works in namespaces of its own; the real ipvsadm reads the tables
back (differential.compare_state) and an nlmon tap counts what went over the
wire (nltap).  The in-place edits themselves are proven one field at a time
in test_apply_inplace.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from differential import compare_state, ipvsadm
from heldconn import PORT, EchoServers, HeldConnection
from nltap import NetlinkTap
from nsutil import NetNS, delete_many, run_ipvsctl, wait_for
from topology import Topology

# A table that uses every setting -S can write (as tests/kernel/test_restore.py).
TABLE = """\
-A -t 10.20.0.1:80 -s rr
-a -t 10.20.0.1:80 -r 10.21.0.1:8080 -m -w 3
-a -t 10.20.0.1:80 -r 10.21.0.2:80 -g -w 0
-a -t 10.20.0.1:80 -r 10.21.0.3:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-a -t 10.20.0.1:80 -r 10.21.0.4:80 -i -w 1 --tun-type gre --tun-nocsum
-a -t 10.20.0.1:80 -r 10.21.0.5:80 -i -w 1
-A -u 10.20.0.2:53 -s wrr -o
-a -u 10.20.0.2:53 -r 10.21.1.1:5353 -m -w 2
-A -u 10.20.0.3:5060 -s rr -p 60 --pe sip
-A -t 10.20.0.4:443 -s sh -p 900 -M 255.255.255.0 -b sh-fallback,sh-port
-A --sctp-service 10.20.0.5:3868 -s mh -b mh-port
-A -t [2001:db8:20::1]:80 -s lc -p 30 -M 64
-a -t [2001:db8:20::1]:80 -r [2001:db8:21::1]:8080 -m -w 1
-A -f 42 -s wlc
-a -f 42 -r 10.21.2.1:0 -m -w 1
-A -f 43 -6 -s rr
-a -f 43 -6 -r [2001:db8:21::9]:0 -g -w 1
"""

# The same table, changed in every way a plan knows.
CHANGED = """\
-A -t 10.20.0.1:80 -s wrr
-a -t 10.20.0.1:80 -r 10.21.0.1:8081 -m -w 3
-a -t 10.20.0.1:80 -r 10.21.0.2:80 -g -w 5 -x 100 -y 10
-a -t 10.20.0.1:80 -r 10.21.0.3:80 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum
-a -t 10.20.0.1:80 -r 10.21.0.4:80 -m -w 1
-a -t 10.20.0.1:80 -r 10.21.0.6:80 -g -w 1
-A -u 10.20.0.2:53 -s wrr
-a -u 10.20.0.2:53 -r 10.21.1.1:5353 -m -w 2
-A -u 10.20.0.3:5060 -s rr -p 120
-A -t 10.20.0.4:443 -s sh -p 900 -M 255.255.0.0 -b sh-port
-A -t [2001:db8:20::1]:80 -s lc -p 30 -M 96
-a -t [2001:db8:20::1]:80 -r [2001:db8:21::1]:8080 -m -w 4
-A -f 42 -s rr
-A -f 44 -s wlc
-a -f 44 -r 10.21.2.1:0 -m -w 1
"""


def lines(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def build(ns, text):
    for line in lines(text):
        r = ipvsadm(ns, line.split())
        assert r.status == 0, (line, r)


def ctl(ns, *args, input=None):
    return run_ipvsctl(ns, *args, input=input)


def saved(ns):
    r = ipvsadm(ns, ["-Sn"])
    assert r.status == 0, r
    return r.out


@pytest.fixture
def three():
    spaces = NetNS.create_many(["x", "y", "z"])
    yield spaces
    delete_many(spaces)


def test_apply_then_a_second_apply_sends_no_change_request(netns_pair, tmp_path):
    ours, ref = netns_pair
    f = tmp_path / "table.rules"
    f.write_text(TABLE)
    with NetlinkTap(ours) as tap:
        r = ctl(ours, "apply", str(f))
        assert r.returncode == 0, r.stderr
        first = tap.take()
        assert first == {"new_service": 8, "new_dest": 9}, first
        assert r.stdout.splitlines()[-1].startswith("applied 17 changes")

        r = ctl(ours, "apply", str(f))
        assert (r.returncode, r.stdout, r.stderr) == (0, "no changes\n", "")
        assert tap.take() == {}  # nothing at all changes the table on the wire
        r = ctl(ours, "diff", str(f))
        assert (r.returncode, r.stdout) == (0, "in sync (8 services unchanged)\n")
        assert tap.take() == {}
    # the same table as ipvsadm -R of the same file
    assert ipvsadm(ref, ["-R"], input=TABLE).status == 0
    assert not compare_state(ref, ours)


def test_apply_converges_a_changed_table_like_ipvsadm_would_build_it(netns_pair, tmp_path):
    ours, ref = netns_pair
    build(ours, TABLE)
    f = tmp_path / "changed.rules"
    f.write_text(CHANGED)
    r = ctl(ours, "apply", "--prune", str(f))
    assert r.returncode == 0, r.stderr
    assert ctl(ours, "diff", "--prune", str(f)).returncode == 0
    build(ref, CHANGED)
    assert not compare_state(ref, ours)


def test_prune_touches_only_its_scope_and_never_a_foreign_service(netns, tmp_path):
    build(netns, TABLE)
    foreign = ["-A -u 192.0.2.53:53 -s rr", "-a -u 192.0.2.53:53 -r 192.0.2.54:53 -m",
               "-A -f 99 -s rr", "-A -t 10.20.9.9:80 -s rr"]
    build(netns, "\n".join(foreign))
    f = tmp_path / "two.rules"
    f.write_text("-A -t 10.20.0.1:80 -s rr\n-a -t 10.20.0.1:80 -r 10.21.0.1:8080 -m -w 3\n"
                 "-A -u 10.20.0.2:53 -s wrr -o\n")

    def services():
        return {line.split()[1] + " " + line.split()[2] for line in saved(netns).splitlines()
                if line.startswith("-A")}

    everything = services()
    r = ctl(netns, "apply", str(f))  # without --prune: only the named services change
    assert r.returncode == 0, r.stderr
    assert services() == everything
    r = ctl(netns, "apply", "--prune", "--scope", "10.20.0.0/16", str(f))
    assert r.returncode == 0, r.stderr
    left = services()
    assert "-u 192.0.2.53:53" in left and "-f 99" in left and "-f 42" in left  # out of scope
    assert "-t 10.20.9.9:80" not in left and "-u 10.20.0.3:5060" not in left
    assert "-t [2001:db8:20::1]:80" in left  # another family: another scope
    r = ctl(netns, "apply", "--prune", "--scope", "10.20.0.0/16", "--scope", "fwmark:1-99", str(f))
    assert r.returncode == 0, r.stderr
    left = services()
    assert "-f 99" not in left and "-f 42" not in left and "-u 192.0.2.53:53" in left
    # a file that names a service outside the scope is refused whole
    r = ctl(netns, "apply", "--prune", "--scope", "192.0.2.0/24", str(f))
    assert r.returncode == 2 and "outside every --scope" in r.stderr
    assert services() == left
    r = ctl(netns, "apply", "--prune", str(f))  # no scope: the file owns the whole table
    assert r.returncode == 0, r.stderr
    assert services() == {"-t 10.20.0.1:80", "-u 10.20.0.2:53"}


@pytest.fixture
def no_module_loading():
    """ip_vs_ovf unloaded and the kernel's module loader pointed at a program
    that does not exist, so that a service asking for "ovf" is refused by the
    kernel (ENOENT) while everything else in the batch is accepted.  apply's
    own name check cannot ask such a loader ("not checked"), so the request
    reaches the kernel.  Global to the guest, put back afterwards."""
    path = Path("/proc/sys/kernel/modprobe")
    old = path.read_text().strip()
    # The netlink tap's nlmon device must be loadable after the loader is gone.
    subprocess.run([old, "nlmon"], check=True)
    r = subprocess.run(["rmmod", "ip_vs_ovf"], capture_output=True, text=True)
    assert r.returncode == 0, f"rmmod ip_vs_ovf: {r.stderr}"
    path.write_text("/nonexistent/modprobe\n")
    try:
        yield
    finally:
        path.write_text(old + "\n")
        subprocess.run([old, "ip_vs_ovf"], check=True)


def test_a_refused_step_rolls_back_to_the_snapshot(netns, tmp_path, no_module_loading):
    build(netns, TABLE)
    before = {view: ipvsadm(netns, view.split()).out for view in
              ("-Sn", "-Ln --thresholds", "-Ln --tun-info", "-Ln --persistent-conn")}
    f = tmp_path / "changed.rules"
    # The refused step comes late, after edits, adds and deletes were accepted.
    f.write_text(CHANGED + "-A -t 10.20.0.99:80 -s ovf\n-a -t 10.20.0.99:80 -r 10.21.0.9:80 -m\n")
    with NetlinkTap(netns) as tap:
        r = ctl(netns, "apply", "--prune", str(f))
        sent = tap.take()
    assert r.returncode == 255, r
    assert "apply: refused: -A -t 10.20.0.99:80 -s ovf: Scheduler or persistence engine not found" in r.stderr
    assert "rolled back" in r.stderr and "the table is as it was" in r.stderr
    assert sum(sent.values()) > 20  # the plan went out, then its undo
    after = {view: ipvsadm(netns, view.split()).out for view in before}
    assert after == before


def test_a_scheduler_this_kernel_lacks_is_refused_before_anything_is_sent(netns, tmp_path):
    """As restore does: the names are checked first, so a misspelt scheduler
    or engine costs no half-applied plan and no rollback."""
    build(netns, TABLE)
    before = ipvsadm(netns, ["-Sn"]).out
    f = tmp_path / "typo.rules"
    f.write_text(CHANGED + "-A -t 10.20.0.99:80 -s wrrr\n-A -t 10.20.0.98:80 -s rr --pe sipp\n")
    wrrr = 1 + f.read_text().splitlines().index("-A -t 10.20.0.99:80 -s wrrr")
    for command in (["apply"], ["apply", "--dry-run"], ["diff"]):
        with NetlinkTap(netns) as tap:
            r = ctl(netns, *command, str(f))
            sent = tap.take()
        assert r.returncode == 2, r
        assert (f"{command[0]}: {f}: line {wrrr}: scheduler 'wrrr' is not available: module "
                f"ip_vs_wrrr is not loaded") in r.stderr, r.stderr
        assert "did you mean 'wrr'?" in r.stderr and "persistence engine 'sipp'" in r.stderr
        assert r.stderr.rstrip().endswith(f"{command[0]}: nothing was changed"), r.stderr
        assert sum(sent.values()) == 0, sent
    assert ipvsadm(netns, ["-Sn"]).out == before


def _service_count(ns) -> int:
    with ns.enter():
        text = Path("/proc/thread-self/net/ip_vs").read_text()
    return sum(1 for line in text.splitlines() if line[:3] in ("TCP", "UDP", "FWM", "SCT"))


def big_table(n, seed=""):
    out = []
    for i in range(n):
        vip = f"10.{100 + i // 60000}.{i // 250 % 240}.{i % 250 + 1}"
        out.append(f"-A -t {vip}:80 -s rr{seed}")
        out.append(f"-a -t {vip}:80 -r 10.30.{i % 200}.{i % 250 + 1}:8080 -m -w 1")
        out.append(f"-a -t {vip}:80 -r 10.31.{i % 200}.{i % 250 + 1}:8080 -m -w 2")
    return "\n".join(out) + "\n"


def test_sigterm_during_a_big_apply_leaves_the_old_table_or_the_new_one(tmp_path):
    old = "-A -u 10.99.0.1:53 -s rr\n-a -u 10.99.0.1:53 -r 10.99.1.1:53 -m\n-A -f 7 -s wlc\n"
    f = tmp_path / "big.rules"
    f.write_text(old + big_table(4000))
    outcomes = []
    for attempt in range(3):
        (ns,) = NetNS.create_many(["sig"])
        try:
            build(ns, old)
            before = saved(ns)
            proc = ns.popen([sys.executable, "-m", "ipvsctl", "apply", str(f)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            wait_for(lambda: _service_count(ns) > 2 or proc.poll() is not None, timeout=60,
                     interval=0.01, what="the apply to start changing the table")
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=120)
            if proc.returncode == 128 + signal.SIGTERM:
                assert "interrupted by SIGTERM" in err and "the table is as it was" in err, err
                assert saved(ns) == before
            else:
                assert proc.returncode == 0, err
                assert ctl(ns, "diff", str(f)).returncode == 0
            outcomes.append(proc.returncode)
        finally:
            delete_many([ns])
        if 128 + signal.SIGTERM in outcomes:
            break
    assert 128 + signal.SIGTERM in outcomes, f"the signal never came during the batch: {outcomes}"


def test_two_concurrent_applies_end_as_one_files_table(netns, tmp_path):
    a, b = tmp_path / "a.rules", tmp_path / "b.rules"
    a.write_text(big_table(2000))
    b.write_text(big_table(2000).replace("-s rr", "-s wrr").replace("-w 2", "-w 3"))
    procs = [netns.popen([sys.executable, "-m", "ipvsctl", "apply", str(p)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True) for p in (a, b)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    in_sync = [ctl(netns, "diff", str(p)).returncode == 0 for p in (a, b)]
    assert in_sync in ([True, False], [False, True]), in_sync


def test_diff_rules_fed_to_the_real_ipvsadm_converge_a_copy(netns_pair, tmp_path):
    ours, copy = netns_pair
    build(ours, TABLE)
    build(copy, TABLE)
    f = tmp_path / "changed.rules"
    f.write_text(CHANGED)
    r = ctl(ours, "diff", "--format", "rules", "--prune", "--scope", "10.20.0.0/16",
            "--scope", "2001:db8::/32", "--scope", "fwmark:1-100", str(f))
    assert r.returncode == 1, r.stderr
    rules = r.stdout
    assert "-D --sctp-service 10.20.0.5:3868" in rules and "-e -t 10.20.0.1:80 -r 10.21.0.4:80 -m -w 1" in rules
    fed = ipvsadm(copy, ["-R"], input=rules)
    assert (fed.status, fed.err) == (0, ""), fed
    assert ctl(copy, "diff", "--prune", str(f)).returncode == 0
    assert ctl(ours, "apply", "--prune", str(f)).returncode == 0
    assert not compare_state(ours, copy)


def test_json_input_is_equivalent_to_rule_input(three, tmp_path):
    source, by_rules, by_json = three
    build(source, TABLE)
    rules, doc = tmp_path / "t.rules", tmp_path / "t.json"
    rules.write_text(saved(source))
    r = ctl(source, "-Ln", "--json")
    assert r.returncode == 0
    doc.write_text(r.stdout)
    assert ctl(by_rules, "apply", str(rules)).returncode == 0
    assert ctl(by_json, "apply", str(doc)).returncode == 0
    assert not compare_state(by_rules, by_json)
    assert not compare_state(source, by_json)
    assert ctl(by_json, "diff", str(rules)).returncode == 0
    assert ctl(by_rules, "diff", str(doc)).returncode == 0


# --- drain, with real connections ------------------------------------------------

VIP = Topology.vip


@pytest.fixture
def held():
    """Two backends with echo servers; VIP:PORT round robin over both (NAT),
    one connection held open to one of them; then an idle real server (added
    after the connection, so it never had one)."""
    with Topology(backends=2) as topo, EchoServers(topo):
        table = (f"-A -t {VIP}:{PORT} -s rr\n"
                 + "".join(f"-a -t {VIP}:{PORT} -r {b.addr}:{PORT} -m -w 1\n" for b in topo.backends))
        r = ctl(topo.director, "apply", "-", input=table)
        assert r.returncode == 0, r.stderr
        conn = HeldConnection(topo, VIP)
        try:
            answer = conn.talk()
            table += f"-a -t {VIP}:{PORT} -r 198.18.9.9:{PORT} -m -w 1\n"
            r = ctl(topo.director, "apply", "-", input=table)
            assert r.returncode == 0, r.stderr
            name = answer.split()[0]
            busy = next(b for b in topo.backends if b.name == name)
            yield topo, conn, busy, table
        finally:
            conn.close()


def weights(ns):
    out = {}
    for line in saved(ns).splitlines():
        if line.startswith("-a"):
            words = line.split()
            out[words[4]] = int(words[words.index("-w") + 1])
    return out


def test_drain_of_an_idle_server_removes_it_at_once(held):
    topo, conn, busy, _ = held
    t0 = time.monotonic()
    r = ctl(topo.director, "drain", "-t", f"{VIP}:{PORT}", "-r", f"198.18.9.9:{PORT}")
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 10
    assert f"drained 198.18.9.9:{PORT} of TCP {VIP}:{PORT} in 0 s: removed" in r.stdout
    assert "net.ipv4.vs.expire_nodest_conn = 0: " in r.stdout
    assert f"198.18.9.9:{PORT}" not in weights(topo.director)
    assert conn.talk().startswith(busy.name)


def test_drain_of_a_busy_server_times_out_and_leaves_it_at_weight_0(held):
    topo, conn, busy, _ = held
    r = ctl(topo.director, "drain", "-t", f"{VIP}:{PORT}", "-r", f"{busy.addr}:{PORT}",
            "--timeout", "2", "--interval", "0.2")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert (f"timed out after 2 s: {busy.addr}:{PORT} of TCP {VIP}:{PORT} still has 1 connection "
            "(1 active, 0 inactive, 0 persistence templates); left at weight 0") in r.stdout
    assert weights(topo.director)[f"{busy.addr}:{PORT}"] == 0
    assert conn.talk().startswith(busy.name)  # weight 0 never breaks a connection
    r = ctl(topo.director, "drain", "-t", f"{VIP}:{PORT}", "-r", f"{busy.addr}:{PORT}", "--timeout", "0")
    assert r.returncode == 1 and "still has 1 connection" in r.stdout


def test_apply_drain_drains_leaving_servers_at_once_then_removes_them(held, tmp_path):
    topo, conn, busy, table = held
    other = next(b for b in topo.backends if b is not busy)
    f = tmp_path / "keep-one.rules"
    f.write_text(f"-A -t {VIP}:{PORT} -s rr\n-a -t {VIP}:{PORT} -r {other.addr}:{PORT} -m -w 1\n")
    t0 = time.monotonic()
    r = ctl(topo.director, "apply", "--drain", "2", "--interval", "0.2", str(f))
    took = time.monotonic() - t0
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert 2 <= took < 30
    out = r.stdout
    assert "draining 2 real servers for up to 2 s:" in out
    assert f"~ TCP {VIP}:{PORT} -> {busy.addr}:{PORT}: weight: 1 \u2192 0" in out
    assert f"drained 198.18.9.9:{PORT} of TCP {VIP}:{PORT} in 0 s" in out
    assert (f"drain timed out: {busy.addr}:{PORT} of TCP {VIP}:{PORT} still had 1 connection "
            "(1 active, 0 inactive, 0 persistence templates): removed anyway") in out
    assert out.splitlines()[-1].endswith("verified")
    assert weights(topo.director) == {f"{other.addr}:{PORT}": 1}


def test_sigterm_while_draining_rolls_back_but_keeps_the_drained_server_at_weight_0(held, tmp_path):
    topo, conn, busy, table = held
    before = weights(topo.director)
    f = tmp_path / "changed.rules"
    other = next(b for b in topo.backends if b is not busy)
    f.write_text(f"-A -t {VIP}:{PORT} -s wrr\n-a -t {VIP}:{PORT} -r {other.addr}:{PORT} -m -w 5\n"
                 f"-a -t {VIP}:{PORT} -r 198.18.9.9:{PORT} -m -w 1\n")
    proc = topo.director.popen([sys.executable, "-m", "ipvsctl", "apply", "--drain", "60", str(f)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    while line and not line.startswith("draining"):
        line = proc.stdout.readline()
    assert line.startswith("draining 1 real server"), line
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    assert "interrupted by SIGTERM" in err
    assert f"left at weight 0 (it was draining): {busy.addr}:{PORT} of TCP {VIP}:{PORT}" in err
    after = weights(topo.director)
    assert after[f"{busy.addr}:{PORT}"] == 0
    after[f"{busy.addr}:{PORT}"] = before[f"{busy.addr}:{PORT}"]
    assert after == before
    assert " -s rr" in saved(topo.director)  # the scheduler edit was undone
    assert conn.talk().startswith(busy.name)


def test_identity_cannot_be_edited(netns):
    """What plan.py treats as identity, the kernel looks up and never edits:
    SET_DEST naming another port finds no server (ENOENT), SET_SERVICE naming
    another port or family finds no service (ESRCH)."""
    import errno

    from ipvsctl import backend as b
    from ipvsctl import model as m
    from ipvsctl.netlink.backend import NetlinkBackend

    build(netns, "-A -t 10.20.0.1:80 -s rr\n-a -t 10.20.0.1:80 -r 10.21.0.1:8080 -m -w 1\n-A -f 5 -s rr\n")
    key = m.ServiceKey(m.AF_INET, m.IPPROTO_TCP, "10.20.0.1", 80)
    with netns.enter():
        backend = NetlinkBackend()
        try:
            moved = m.Destination(m.AF_INET, "10.21.0.1", 8081, m.FWD_MASQ, 1)
            with pytest.raises(b.KernelError) as e:
                backend.apply(b.Request(b.OP_EDIT_DEST, service=key, dest=moved))
            assert e.value.errno == errno.ENOENT
            for other in (key.replace(port=81), m.ServiceKey(m.AF_INET6, fwmark=5)):
                with pytest.raises(b.KernelError) as e:
                    backend.apply(b.Request(b.OP_EDIT_SERVICE, service=m.Service(other, "wrr")))
                assert e.value.errno == errno.ESRCH
        finally:
            backend.close()
    assert saved(netns) == ("-A -t 10.20.0.1:80 -s rr\n-a -t 10.20.0.1:80 -r 10.21.0.1:8080 -m -w 1\n"
                            "-A -f 5 -s rr\n")
