"""``ipvsctl metrics --listen``: serve ``/metrics`` over HTTP.

Strategy: the standard library's threading HTTP server, one thread per
connection, and three rules that keep a busy or slow Prometheus from
hurting the director:

* **Each scrape reads the kernel afresh** (no cache: a scrape shows the
  table as it is at that moment).
* **Reads are serialised**: one lock around the kernel read, so two
  scrapes never dump the table at the same time (each dump walks the
  kernel's lists; two at once only slow both).
* **Bounded**: at most ``MAX_IN_FLIGHT`` scrapes are served at once, and
  a scrape waits at most ``wait`` seconds for its turn to read; beyond
  either it gets ``503 Service Unavailable`` at once instead of piling up
  threads.  The read itself is bounded by the backend (a dump that keeps
  changing is retried a few times, then reported as a failed scrape).

The document is streamed with chunked transfer encoding as it is rendered
(ipvsctl.metrics), so a big table is never held whole as text.  A failed
read still answers 200 with ``ipvs_scrape_success 0`` (the exporter
convention: a scrape that fails shows as a value, not as a missing target).

The backend (one netlink socket, in ``--netns`` if given) is opened once
and reopened after a failure.
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ipvsctl import metrics

MAX_IN_FLIGHT = 4
DEFAULT_WAIT = 10.0

INDEX = b"""<html><head><title>ipvsctl metrics</title></head>
<body><h1>ipvsctl metrics</h1><p><a href="/metrics">/metrics</a>: the IPVS table for Prometheus.</p></body></html>
"""


class Scraper:
    """Reads snapshots one at a time from a backend opened on demand."""

    def __init__(self, open_backend, wait: float = DEFAULT_WAIT):
        self._open = open_backend
        self._backend = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self.wait = wait

    def try_enter(self) -> bool:
        return self._slots.acquire(blocking=False)

    def leave(self) -> None:
        self._slots.release()

    def read(self) -> metrics.Snapshot | None:
        """A fresh snapshot, or None when the turn did not come within ``wait``."""
        if not self._lock.acquire(timeout=self.wait):
            return None
        try:
            if self._backend is None:
                try:
                    self._backend = self._open()
                except Exception as e:  # no IPVS, no namespace, no rights: a failed scrape
                    return metrics.Snapshot(error=str(e) or type(e).__name__)
            snap = metrics.Snapshot.read(self._backend)
            if not snap.ok:
                self._close_backend()  # a fresh socket next time
            return snap
        finally:
            self._lock.release()

    def _close_backend(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            try:
                backend.close()
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            self._close_backend()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ipvsctl-metrics"
    scraper: Scraper  # set on the subclass made by make_server

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._simple(200, "text/html; charset=utf-8", INDEX, body)
            return
        if path != "/metrics":
            self._simple(404, "text/plain; charset=utf-8", b"not found: try /metrics\n", body)
            return
        if not body:
            # HEAD: what a GET would answer, without reading the kernel.
            self.send_response(200)
            self.send_header("Content-Type", metrics.CONTENT_TYPE)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            return
        if not self.scraper.try_enter():
            self._simple(503, "text/plain; charset=utf-8", b"too many scrapes at once\n", body)
            return
        try:
            snap = self.scraper.read()
            if snap is None:
                self._simple(503, "text/plain; charset=utf-8",
                             b"another scrape is still reading the table\n", body)
                return
            self.send_response(200)
            self.send_header("Content-Type", metrics.CONTENT_TYPE)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in metrics.exposition(snap):
                data = piece.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")
        finally:
            self.scraper.leave()

    def _simple(self, status: int, ctype: str, data: bytes, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass  # one line per scrape would flood a log; errors still reach log_error

    def log_error(self, format, *args) -> None:  # noqa: A002
        sys.stderr.write("ipvsctl metrics: %s: %s\n" % (self.address_string(), format % args))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        """One line, never socketserver's traceback: a scraper that hangs up
        half-way is ordinary (its answer is dropped, the server goes on)."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):  # reset, broken pipe, aborted
            return
        sys.stderr.write(f"ipvsctl metrics: {client_address[0]}: {type(error).__name__}: {error}\n")


def parse_listen(text: str) -> tuple[str, int, int]:
    """'ADDR:PORT', '[V6ADDR]:PORT' or ':PORT' -> (host, port, address family).

    Raises ValueError naming what is wrong.
    """
    import socket

    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ValueError(f"{text!r}: expected ADDR:PORT, [IPV6]:PORT or :PORT "
                         "(port 0: any free port)")
    port = int(port_text)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        family = socket.AF_INET6
    elif host == "":
        host, family = "0.0.0.0", socket.AF_INET
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:{port}")
    else:
        family = socket.AF_INET
    try:
        socket.inet_pton(family, host)
    except OSError:
        raise ValueError(f"{text!r}: {host!r} is not a numeric IP address") from None
    return host, port, family


def make_server(listen: str, open_backend, wait: float = DEFAULT_WAIT) -> tuple[Server, Scraper]:
    """The HTTP server bound to ``listen`` (ValueError, OSError)."""
    host, port, family = parse_listen(listen)
    scraper = Scraper(open_backend, wait)
    handler = type("BoundHandler", (Handler,), {"scraper": scraper})
    server_class = type("BoundServer", (Server,), {"address_family": family})
    return server_class((host, port), handler), scraper
