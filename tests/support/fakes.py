"""A fake Backend and a resolver that knows no names, for unit tests that
drive ipvsctl's command path without a kernel or a network."""

from __future__ import annotations

import contextlib
import errno as E

from ipvsctl import model as m
from ipvsctl.backend import KernelError

CONNECTIONS = (
    "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
    "TCP C0A80001 1F90 C0000201 0050 C6336401 0050 ESTABLISHED 899\n"
    "UDP 20010DB8000000000000000000000001 0035 C0000201 0035 C6336401 0035 UDP 120 sip abc\n"
)


class FakeBackend:
    """A small table that answers every read; changes succeed, except that
    every third one is refused (so error paths run too)."""

    def __init__(self):
        self.applied = []
        self._n = 0
        svc = m.Service(m.ServiceKey(m.AF_INET, m.IPPROTO_TCP, "192.0.2.1", 80), "rr", stats=m.Stats(1, 2, 3))
        dests = [m.Destination(m.AF_INET, "198.51.100.1", 80, m.FWD_MASQ, stats=m.Stats()),
                 m.Destination(m.AF_INET6, "2001:db8::1", 80, m.FWD_TUNNEL, tun_type=m.TUN_GUE, tun_port=6080,
                               stats=m.Stats())]
        mark = m.Service(m.ServiceKey(m.AF_INET, fwmark=2**31 + 5), stats=m.Stats())
        self._table = [(svc, dests), (mark, [])]

    def info(self):
        return m.Info(0x010201, 4096)

    def services(self):
        return [s for s, _ in self._table]

    def service(self, key):
        for s, _ in self._table:
            if s.key == key:
                return s
        raise KernelError(E.ESRCH, "get_service")

    def destinations(self, key):
        for s, d in self._table:
            if s.key == key:
                return d
        raise KernelError(E.ESRCH, "get_dests")

    def table(self, counters=True):
        return list(self._table)

    def timeouts(self):
        return m.Timeouts(900, 120, 300)

    def daemons(self):
        return [m.Daemon(m.DAEMON_MASTER, "eth0", 1)]

    def read_proc_net(self, name):
        return CONNECTIONS

    def apply(self, request):
        self._n += 1
        if self._n % 3 == 0:
            raise KernelError(E.EEXIST, request.op)
        self.applied.append(request)

    def apply_many(self, requests):
        errors = {}
        for i, r in enumerate(requests):
            try:
                self.apply(r)
            except KernelError as e:
                errors[i] = e
        return errors

    def close(self):
        pass


class NoNames:
    """The C socket module, but every name look-up fails at once (no DNS)."""

    def __init__(self):
        import _socket

        self._real = _socket

    def __getattr__(self, name):
        return getattr(self._real, name)

    def _fail(self, *a, **kw):
        raise OSError(E.ENOENT, "no names in unit tests")

    gethostbyaddr = gethostbyname = getservbyport = getservbyname = _fail


@contextlib.contextmanager
def offline(backend_factory=FakeBackend):
    """ipvsctl's command path with a fake backend and no name look-ups."""
    from ipvsctl import cvalues, names, session

    saved = (session.open_backend, names.socket, cvalues.socket)
    session.open_backend = lambda netns=None: backend_factory()
    names.socket = cvalues.socket = NoNames()
    names._HOSTS.clear()
    names._PORTS.clear()
    try:
        yield
    finally:
        session.open_backend, names.socket, cvalues.socket = saved
        names._HOSTS.clear()
        names._PORTS.clear()
