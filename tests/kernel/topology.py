"""A small real network for end-to-end IPVS tests, all in namespaces.

    client ns                director ns (IPVS here)            backend ns i
    eth0 198.18.0.2/24 ---- c0 198.18.0.1/24                   
         fd00:18::2/64         fd00:18::1/64
                               VIP 198.18.0.10, fd00:18::10
                               b<i> 198.18.<i>.1/24  ---------- eth0 198.18.<i>.2/24
                                    fd00:18:<i>::1/64                fd00:18:<i>::2/64
                                                                 HTTP server on :80
                                                                 answering "backend<i>"

Client and backends route by default via the director, which forwards
(ip_forward=1), so IPVS in NAT mode (-m) works both ways.  The addresses are
the benchmarking range 198.18.0.0/15 and the ULA fd00::/8; every packet stays
inside these namespaces.

Use it as a context manager (or through the ``traffic_topology`` fixture):

    with Topology(backends=3) as topo:
        run_ipvsadm(topo.director, "-A", "-t", f"{topo.vip}:80", "-s", "rr")
        ...
        topo.get(30)   # Counter({"backend1": 10, "backend2": 10, "backend3": 10})

Run as a script it is the demo (scripts/demo):  python tests/kernel/topology.py --demo
"""

from __future__ import annotations

import argparse
import http.client
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `python topology.py`
from nsutil import NetNS, delete_many  # noqa: E402

# The backends' HTTP servers.  One launcher process imports http.server once
# (about 0.5 s under UML), then for each backend moves into its namespace with
# setns and forks: each child is that backend's server, a process living in
# the backend's namespace, for a fraction of the cost of one python each.
# server_bind is TCPServer's, not HTTPServer's: HTTPServer's calls getfqdn(),
# a DNS lookup that would try to leave the namespace.
SERVER = r"""
import http.server, os, signal, socket, socketserver, sys
from ipvsctl.netlink.netns import enter
port, specs = int(sys.argv[1]), sys.argv[2:]

def serve(name):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6
        daemon_threads = True
        def server_bind(self):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = name, port
    return Server(("::", port), Handler)

children = []
def stop(*_):
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
for spec in specs:
    name, path = spec.split("=", 1)
    enter(path)
    srv = serve(name)  # listening before the fork: bind errors show here
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        srv.serve_forever()
        os._exit(0)
    srv.server_close()
    children.append(pid)
print("ready", *(f"{spec.split('=')[0]}={pid}" for spec, pid in zip(specs, children)), flush=True)
while children:
    pid, _ = os.wait()
    children.remove(pid)
"""

START_TIMEOUT = 20.0  # seconds for all servers to listen (python starts slowly under UML)


@dataclass
class Backend:
    name: str  # what its server answers, e.g. "backend1"
    ns: NetNS
    addr: str
    addr6: str
    pid: int | None = None  # its HTTP server, a process inside ``ns``

    def stop_server(self) -> None:
        """Stop this backend's HTTP server (e.g. to test a dead real server)."""
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.pid = None


class Topology:
    vip = "198.18.0.10"
    vip6 = "fd00:18::10"
    client_addr = "198.18.0.2"
    client_addr6 = "fd00:18::2"

    def __init__(self, backends: int = 3, port: int = 80):
        if not 1 <= backends <= 250:
            raise ValueError("backends must be 1..250")
        self.n = backends
        self.port = port
        self.client: NetNS | None = None
        self.director: NetNS | None = None
        self.backends: list[Backend] = []
        self._spaces: list[NetNS] = []
        self._launcher: subprocess.Popen | None = None

    @property
    def backend_addrs(self) -> list[str]:
        return [b.addr for b in self.backends]

    @property
    def backend_addrs6(self) -> list[str]:
        return [b.addr6 for b in self.backends]

    # --- building and tearing down ------------------------------------------

    def __enter__(self) -> "Topology":
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _build(self) -> None:
        roles = ["client", "director"] + [f"b{i}" for i in range(1, self.n + 1)]
        self._spaces = NetNS.create_many(roles)
        self.client, self.director, *bns = self._spaces
        self.backends = [
            Backend(f"backend{i}", ns, f"198.18.{i}.2", f"fd00:18:{i}::2")
            for i, ns in enumerate(bns, start=1)
        ]

        # The director creates every veth pair and pushes the far ends out.
        # IPv6 addresses get nodad: duplicate address detection would keep
        # them unusable ("tentative") for about a second.
        lines = [
            f"link add c0 type veth peer name eth0 netns {self.client.name}",
            "addr add 198.18.0.1/24 dev c0",
            f"addr add {self.vip}/32 dev c0",
            "addr add fd00:18::1/64 dev c0 nodad",
            f"addr add {self.vip6}/128 dev c0 nodad",
            "link set c0 up",
        ]
        for i, b in enumerate(self.backends, start=1):
            lines += [
                f"link add b{i} type veth peer name eth0 netns {b.ns.name}",
                f"addr add 198.18.{i}.1/24 dev b{i}",
                f"addr add fd00:18:{i}::1/64 dev b{i} nodad",
                f"link set b{i} up",
            ]
        self.director.ip(*lines)
        self.director.sysctl("net.ipv4.ip_forward", 1)
        self.director.sysctl("net.ipv6.conf.all.forwarding", 1)

        self.client.ip(
            f"addr add {self.client_addr}/24 dev eth0",
            f"addr add {self.client_addr6}/64 dev eth0 nodad",
            "link set eth0 up",
            "route add default via 198.18.0.1",
            "route add default via fd00:18::1",
        )
        for i, b in enumerate(self.backends, start=1):
            b.ns.ip(
                f"addr add {b.addr}/24 dev eth0",
                f"addr add {b.addr6}/64 dev eth0 nodad",
                "link set eth0 up",
                f"route add default via 198.18.{i}.1",
                f"route add default via fd00:18:{i}::1",
            )

        self._launcher = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(self.port)]
            + [f"{b.name}={b.ns.path}" for b in self.backends],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        # One line, "ready NAME=PID ...", once every server listens.  Read with
        # os.read, not a buffered readline: select() cannot see what a buffered
        # reader has already pulled out of the pipe.
        fd, line = self._launcher.stdout.fileno(), b""
        deadline = time.monotonic() + START_TIMEOUT
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                raise RuntimeError(
                    f"the backends' HTTP servers did not start within {START_TIMEOUT}s "
                    f"(launcher exit status {self._launcher.poll()})"
                )
            line += chunk
        word, *started = line.decode().split()
        assert word == "ready", line
        pids = dict(item.split("=") for item in started)
        for b in self.backends:
            b.pid = int(pids[b.name])

    def close(self) -> None:
        if self._launcher:
            if self._launcher.poll() is None:
                self._launcher.terminate()  # it stops its children, the servers
            try:
                self._launcher.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._launcher.kill()
                self._launcher.wait()
            self._launcher.stdout.close()
            self._launcher = None
        if self._spaces:
            delete_many(self._spaces)  # also kills anything left inside
            self._spaces = []

    # --- traffic ---------------------------------------------------------------

    def requests(self, n: int, family: int = 4, timeout: float = 3.0, deadline: float = 30.0) -> list[str]:
        """Send n HTTP GETs (one new connection each) from the client to the VIP.

        Returns, in order, the name of the backend that answered each request,
        or "ERROR: ..." for one that failed.  Runs in this process, with the
        thread moved into the client namespace: no process spawn per request.
        Bounded: ``timeout`` per request, ``deadline`` for all of them.
        """
        host = self.vip if family == 4 else self.vip6
        answers: list[str] = []
        stop = time.monotonic() + deadline
        with self.client.enter():
            for _ in range(n):
                left = stop - time.monotonic()
                if left <= 0:
                    answers.append("ERROR: deadline passed")
                    continue
                conn = http.client.HTTPConnection(host, self.port, timeout=min(timeout, left))
                try:
                    conn.request("GET", "/")
                    resp = conn.getresponse()
                    body = resp.read().decode(errors="replace")
                    answers.append(body if resp.status == 200 else f"ERROR: HTTP {resp.status}")
                except (OSError, http.client.HTTPException) as e:
                    answers.append(f"ERROR: {type(e).__name__}: {e}")
                finally:
                    conn.close()
        return answers

    def get(self, n: int, family: int = 4, **kwargs) -> Counter:
        """Counter of which backend answered n requests to the VIP."""
        return Counter(self.requests(n, family=family, **kwargs))


# --- the demo (scripts/demo) ------------------------------------------------------


def demo(tool: str, n_backends: int, n_requests: int) -> int:
    """Round-robin NAT virtual service over real backends, configured by ``tool``."""
    failed = False

    def run(topo: Topology, *args: str, must: bool = True) -> str:
        nonlocal failed
        print(f"$ {shlex.join([tool, *args])}", flush=True)
        try:
            r = topo.director.run([tool, *args])
        except FileNotFoundError:
            print(f"demo: {tool}: command not found", file=sys.stderr)
            raise SystemExit(1)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        sys.stdout.flush()
        if r.returncode != 0:
            print(f"demo: exit status {r.returncode}", file=sys.stderr)
            if must:
                raise SystemExit(1)
            failed = True
        return r.stdout

    print(f"# client {Topology.client_addr} -> director (VIP {Topology.vip}) -> "
          f"{n_backends} backends, all in network namespaces of a {os.uname().release} kernel")
    with Topology(backends=n_backends) as topo:
        service = f"{topo.vip}:{topo.port}"
        print(f"# in the director's namespace ({topo.director.name}):")
        run(topo, "-A", "-t", service, "-s", "rr")
        for b in topo.backends:
            run(topo, "-a", "-t", service, "-r", f"{b.addr}:{topo.port}", "-m")
        print(f"# {n_requests} HTTP requests from the client to http://{service}/")
        answers = topo.requests(n_requests)
        for i, who in enumerate(answers, start=1):
            print(f"request {i:2}: {who}")
        counts = Counter(answers)
        print("# answers: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        run(topo, "-Ln")
        # Linux 6.1 folds the per-CPU counters into what -L --stats shows
        # every 2 s (the rate estimator's tick), so give it that long.
        time.sleep(2.5)
        run(topo, "-Ln", "--stats")
        expected = {b.name: n_requests // n_backends for b in topo.backends}
        if n_requests % n_backends == 0 and dict(counts) != expected:
            print(f"demo: expected an even round robin {expected}", file=sys.stderr)
            failed = True
        elif any(a.startswith("ERROR") for a in answers):
            failed = True
    print("demo: FAILED" if failed else "demo: ok", file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--demo", action="store_true", help="run the round-robin demo")
    p.add_argument("--backends", type=int, default=3)
    p.add_argument("--requests", type=int, default=30)
    args = p.parse_args(argv)
    if not args.demo:
        p.error("nothing to do: use --demo")
    return demo(os.environ.get("IPVS_TOOL", "ipvsctl"), args.backends, args.requests)


if __name__ == "__main__":
    sys.exit(main())
