"""Connections that stay open through a virtual service, for the apply tests.

``EchoServers(topo, ports)`` starts, in every backend namespace of a
topology.Topology, TCP echo servers (each connection held open, each line
answered with "<backend name> <line>") and UDP ones on the same port numbers.  One launcher
process forks a server per backend after moving into its namespace (python
starts slowly under User-Mode Linux), like topology's HTTP servers.

``HeldConnection`` is one client TCP connection from the client namespace to
the VIP: ``talk()`` sends a line and returns the answer, so a test can show
that the very same connection still works after the table changed.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time

PORT = 9000

LAUNCHER = r"""
import os, signal, socket, sys, threading
from ipvsctl.netlink.netns import enter
ports, specs = [int(p) for p in sys.argv[1].split(",")], sys.argv[2:]

def tcp(name, lsock):
    def serve(conn):
        f = conn.makefile("rb")
        for line in f:
            conn.sendall(name.encode() + b" " + line)
        conn.close()
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()

def udp(name, usock):
    while True:
        data, peer = usock.recvfrom(2048)
        usock.sendto(name.encode() + b" " + data, peer)

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
    socks = []
    for port in ports:
        lsock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("::", port)); lsock.listen(64)
        usock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        usock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        usock.bind(("::", port))
        socks.append((lsock, usock))
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for lsock, usock in socks:
            threading.Thread(target=udp, args=(name, usock), daemon=True).start()
            threading.Thread(target=tcp, args=(name, lsock), daemon=True).start()
        signal.pause()
        os._exit(0)
    for lsock, usock in socks:
        lsock.close(); usock.close()
    children.append(pid)
print("ready", flush=True)
while children:
    pid, _ = os.wait()
    children.remove(pid)
"""


class EchoServers:
    def __init__(self, topo, ports=(PORT,)):
        self.ports = list(ports)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, ",".join(map(str, self.ports))]
            + [f"{b.name}={b.ns.path}" for b in topo.backends],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        fd, line = self.proc.stdout.fileno(), b""
        deadline = time.monotonic() + 20
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                raise RuntimeError(f"echo servers did not start (exit {self.proc.poll()})")
            line += chunk
        assert line.strip() == b"ready", line

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()

    def __enter__(self) -> EchoServers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HeldConnection:
    """One TCP (or UDP) flow from the client namespace to host:port, kept open."""

    def __init__(self, topo, host: str, port: int = PORT, udp: bool = False, timeout: float = 5.0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with topo.client.enter():
            self.sock = socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.udp = udp
        self.sock.connect((host, port))
        self.n = 0

    def talk(self) -> str:
        """Send one line, return the answer ("backend1 line-N")."""
        self.n += 1
        line = f"line-{self.n}\n".encode()
        if self.udp:
            self.sock.send(line)
            return self.sock.recv(2048).decode().strip()
        self.sock.sendall(line)
        data = b""
        while not data.endswith(b"\n"):
            chunk = self.sock.recv(2048)
            if not chunk:
                raise ConnectionError("closed by the other end")
            data += chunk
        return data.decode().strip()

    def close(self) -> None:
        self.sock.close()
