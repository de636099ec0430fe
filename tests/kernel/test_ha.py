"""A director that dies: two directors with connection sync, and a failover
that established connections survive (issue 13, item 7; docs/ha.md).

    client 198.18.0.2 ─┐                 ┌─ real server r1 198.18.0.21 (VIP on lo)
    director A .11 ────┤ one LAN (bridge) ├─ real server r2 198.18.0.22 (VIP on lo)
    director B .12 ────┘                 
    A sync0 198.19.0.1/30 ──── B sync0 198.19.0.2/30   (multicast: the sync link)

Both directors get the same rule file through ``ipvsctl -R`` (direct routing
to r1 and r2); A runs the master sync daemon and holds the VIP, B the backup
daemon.  A client holds long-lived TCP connections through the VIP.  B's
connection table, read with ``ipvsctl --netns B -Lnc``, must hold them;
then A's links go down, the VIP moves to B, and every synced connection must
keep exchanging data, through B (the only way left to the VIP).

Connections sync only once they have carried a few packets (sync_threshold,
"3 50" by default): a connection that has only done its handshake is a
control.  It survives the failover exactly when B held it, whatever a given
kernel's rule for syncing it was.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from nsutil import NetNS, delete_many, wait_for

VIP = "198.18.0.10"
PORT = 7000
IPVSCTL = [sys.executable, "-m", "ipvsctl"]
RULES = (f"-A -t {VIP}:{PORT} -s rr\n"
         f"-a -t {VIP}:{PORT} -r 198.18.0.21:{PORT} -g\n"
         f"-a -t {VIP}:{PORT} -r 198.18.0.22:{PORT} -g\n")
ECHO = r"""
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", %d))
s.listen(64)
def echo(c):
    while True:
        data = c.recv(4096)
        if not data:
            break
        c.sendall(data)
while True:
    c, _ = s.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
""" % PORT
LONG_LIVED = 6


def ipvsctl(ns: NetNS, *args: str, input: str | None = None) -> str:
    r = ns.run(IPVSCTL + list(args), input=input)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return r.stdout


class Directors:
    """The topology of the module docstring, built in fresh namespaces."""

    def __init__(self):
        self.spaces = NetNS.create_many(["lan", "client", "dira", "dirb", "r1", "r2"])
        self.lan, self.client, self.a, self.b, self.r1, self.r2 = self.spaces
        self.servers = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        self.lan.ip("link add br0 type bridge", "link set br0 up")
        hosts = [(self.client, "c", "198.18.0.2/24"), (self.a, "a", "198.18.0.11/24"),
                 (self.b, "b", "198.18.0.12/24"), (self.r1, "r1", "198.18.0.21/24"),
                 (self.r2, "r2", "198.18.0.22/24")]
        for ns, tag, addr in hosts:
            self.lan.ip(f"link add lan-{tag} type veth peer name eth0 netns {ns.name}",
                        f"link set lan-{tag} master br0", f"link set lan-{tag} up")
            ns.ip(f"addr add {addr} dev eth0", "link set eth0 up")
        # The sync link: its own veth pair, multicast on.
        self.a.ip(f"link add sync0 type veth peer name sync0 netns {self.b.name}",
                  "addr add 198.19.0.1/30 dev sync0", "link set sync0 up multicast on")
        self.b.ip("addr add 198.19.0.2/30 dev sync0", "link set sync0 up multicast on")
        # Direct routing: the real servers hold the VIP too, and never answer ARP for it.
        for r in (self.r1, self.r2):
            r.ip(f"addr add {VIP}/32 dev lo")
            for conf in ("all", "eth0"):
                r.sysctl(f"net.ipv4.conf.{conf}.arp_ignore", 1)
                r.sysctl(f"net.ipv4.conf.{conf}.arp_announce", 2)
            self.servers.append(r.popen([sys.executable, "-c", ECHO]))
        self.a.ip(f"addr add {VIP}/32 dev eth0")  # A is the active director

    def close(self) -> None:
        for p in self.servers:
            p.kill()
            p.wait()
        delete_many(self.spaces)


@pytest.fixture
def directors():
    d = Directors()
    yield d
    d.close()


def connections_of(text: str) -> dict[int, tuple[str, str]]:
    """{client port: (state, real server)} from -Lnc output."""
    out = {}
    for line in text.splitlines()[2:]:
        w = line.split()
        if len(w) == 6 and w[0] == "TCP" and w[4] == f"{VIP}:{PORT}":
            out[int(w[3].rsplit(":", 1)[1])] = (w[2], w[5])
    return out


def exchange(conn: socket.socket, text: bytes) -> bytes:
    conn.sendall(text)
    got = b""
    while len(got) < len(text):
        part = conn.recv(4096)
        if not part:
            break
        got += part
    return got


def test_established_connections_survive_a_failover_through_the_synced_backup(directors, tmp_path):
    d = directors
    rules = Path(tmp_path, "rules")
    rules.write_text(RULES)
    for director in (d.a, d.b):  # the same rule file on both
        ipvsctl(director, "-R", input=rules.read_text())
    ipvsctl(d.a, "--start-daemon", "master", "--mcast-interface", "sync0", "--syncid", "1")
    ipvsctl(d.b, "--start-daemon", "backup", "--mcast-interface", "sync0", "--syncid", "1")
    assert "master sync daemon (mcast=sync0, syncid=1" in ipvsctl(d.a, "-L", "--daemon")
    assert "backup sync daemon (mcast=sync0, syncid=1" in ipvsctl(d.b, "-L", "--daemon")
    wait_for(lambda: all(_listening(r) for r in (d.r1, d.r2)), 20, what="the echo servers")

    with d.client.enter():
        long_lived = [socket.create_connection((VIP, PORT), timeout=10) for _ in range(LONG_LIVED)]
        handshake_only = socket.create_connection((VIP, PORT), timeout=10)
    try:
        ports = [c.getsockname()[1] for c in long_lived]
        for n in range(5):  # enough packets to pass the sync threshold
            for c in long_lived:
                assert exchange(c, b"before %d\n" % n) == b"before %d\n" % n

        on_a = connections_of(ipvsctl(d.a, "-Lnc"))
        assert all(on_a[p][0] == "ESTABLISHED" for p in ports), on_a

        # The backup's table, read from outside it by name: every long-lived
        # connection, established, to the same real server as on A.
        def synced():
            on_b = connections_of(_run_root(IPVSCTL + ["--netns", d.b.name, "-Lnc"]))
            return on_b if all(p in on_b for p in ports) else None

        on_b = wait_for(synced, 15, what="the long-lived connections on the backup")
        for p in ports:
            assert on_b[p] == ("ESTABLISHED", on_a[p][1]), (p, on_a[p], on_b[p])
        control_synced = handshake_only.getsockname()[1] in on_b

        # Failover: A's links down, the VIP to B; the client forgets A's
        # address (what the new master's gratuitous ARP does in production).
        d.a.ip("link set eth0 down", "link set sync0 down")
        d.b.ip(f"addr add {VIP}/32 dev eth0")
        d.client.ip("neigh flush dev eth0")

        for n in range(5):
            for c in long_lived:
                assert exchange(c, b"after %d\n" % n) == b"after %d\n" % n

        # They went through B: its counters grow (on the estimator's tick).
        def b_forwarded():
            stats = ipvsctl(d.b, "-Ln", "--stats", "--exact")
            row = next(line for line in stats.splitlines() if line.startswith("TCP"))
            return int(row.split()[3]) >= 5 * LONG_LIVED  # InPkts
        wait_for(b_forwarded, 15, what="B's counters to show the traffic")

        # The control: it survives exactly when B held it.
        try:
            survived = exchange(handshake_only, b"control\n") == b"control\n"
        except OSError:
            survived = False
        assert survived == control_synced, (survived, control_synced)
    finally:
        for c in long_lived + [handshake_only]:
            c.close()


def _listening(ns: NetNS) -> bool:
    """Is something listening on PORT in ``ns`` (/proc/net/tcp, state 0A)?"""
    with ns.enter(), open("/proc/thread-self/net/tcp") as f:
        rows = [line.split() for line in f.read().splitlines()[1:]]
    return any(r[1].endswith(f":{PORT:04X}") and r[3] == "0A" for r in rows)


def _run_root(argv: list[str]) -> str:
    import subprocess

    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (argv, r.returncode, r.stderr)
    return r.stdout


def test_the_walkthrough_in_docs_ha_md_works_as_written(tmp_path):
    """docs/ha.md's commands, block by block as a user pastes them (the
    client's Enter fed through its stdin), must do what the page says."""
    import os
    import re
    import subprocess
    import time

    doc = Path(__file__).resolve().parents[2] / "docs" / "ha.md"
    blocks = re.findall(r"```sh\n(.*?)```", doc.read_text(), re.S)
    assert len(blocks) == 7, "docs/ha.md: seven shell blocks expected (setup ... clean up)"
    names = ("lan", "client", "dira", "dirb", "r1", "r2")
    assert not any(os.path.exists(f"/run/netns/{n}") for n in names), "namespaces of docs/ha.md exist already"

    def run(code: str) -> str:
        log = tmp_path / "step.out"
        with open(log, "w") as f:  # not a pipe: the servers started in the background keep it open
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, stdout=f,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=120)
        out = log.read_text()
        assert r.returncode == 0, (code, out)
        return out

    client = None
    try:
        run(blocks[0])
        run(blocks[1])
        daemons = run(blocks[2])
        assert "master sync daemon (mcast=sync0, syncid=1" in daemons
        assert "backup sync daemon (mcast=sync0, syncid=1" in daemons
        wait_for(lambda: all(_listening(NetNS(r)) for r in ("r1", "r2")), 20, what="the echo servers")
        with open(tmp_path / "client.out", "w") as out:
            client = subprocess.Popen(["bash", "-c", blocks[3]], cwd=tmp_path, stdin=subprocess.PIPE,
                                      stdout=out, stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: "failover now" in (tmp_path / "client.out").read_text(), 30,
                 what="the client's first exchanges")
        time.sleep(1)  # the sync daemon sends in batches

        def both_tables():
            out = run(blocks[4])
            tables = out.split("IPVS connection entries")[1:]
            held = [len([line for line in t.splitlines() if "ESTABLISHED" in line]) for t in tables]
            return held == [6, 6]
        wait_for(both_tables, 15, what="six established connections on A and on B")
        run(blocks[5])
        client.stdin.write("\n")
        client.stdin.close()
        assert client.wait(timeout=60) == 0, (tmp_path / "client.out").read_text()
        said = (tmp_path / "client.out").read_text()
        assert said.count("all 6 connections answered after") == 5, said
    finally:
        if client is not None and client.poll() is None:
            client.kill()
        subprocess.run(["bash", "-c", blocks[6]], cwd=tmp_path, capture_output=True, timeout=60)
        delete_many([NetNS(n) for n in names])
