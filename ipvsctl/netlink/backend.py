"""The Backend that speaks generic netlink to the kernel's IPVS.

Strategy: a thin layer joining the pure codec (bytes <-> model) to the
transport (socket, dumps, pipelined batches).  Each Backend method is one
encoder, one exchange and one decoder; the only logic of its own is

* mapping a ``Request`` to its encoder (a table keyed by the OP_* name),
* reading the whole table consistently: IPVS dumps are positional, so a table
  that changes between two parts of a dump can skip or repeat entries.
  ``table()`` reads the services, then each service's destinations, then the
  services again, and starts over (a bounded number of times) when the kernel
  flagged a dump as interrupted, an entry repeats, or the service list changed
  in between (a service deleted mid-read shows up there: the kernel answers
  an empty destination dump, not an error, for a service that is gone).

Imports nothing heavy: no pyroute2, json or rich; ctypes only when a network
namespace is entered.
"""

from __future__ import annotations

import errno as _errno
import gc
import struct

from ipvsctl.backend import (
    OP_ADD_DEST,
    OP_ADD_SERVICE,
    OP_DEL_DEST,
    OP_DEL_SERVICE,
    OP_EDIT_DEST,
    OP_EDIT_SERVICE,
    OP_FLUSH,
    OP_GET_DAEMONS,
    OP_GET_DESTS,
    OP_GET_INFO,
    OP_GET_SERVICE,
    OP_GET_SERVICES,
    OP_GET_TIMEOUTS,
    OP_SET_TIMEOUTS,
    OP_START_DAEMON,
    OP_STOP_DAEMON,
    OP_ZERO,
    KernelError,
    Request,
)
from ipvsctl.model import Daemon, Destination, DestinationRows, Info, Service, ServiceKey, Timeouts
from ipvsctl.netlink import codec
from ipvsctl.netlink.transport import (  # noqa: F401 - re-exported for the CLI
    BatchOverrun,
    DumpInterrupted,
    IPVSUnavailable,
    NetnsNotFound,
    Transport,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: collections.abc imports collections (start-up time)
    from collections.abc import Callable, Iterable, Sequence

#: How many times a read is started over when the table changed under it.
READ_RETRIES = 5


class _GCPaused:
    """Pause the cyclic garbage collector while a dump is decoded.

    A 100,000-entry dump creates a few hundred thousand small, acyclic
    objects; each 700 allocations would otherwise trigger a collection that
    walks the young objects, and now and then all of them (10-20% of the
    decoding time, measured).  Reference counting still frees everything.
    """

    __slots__ = ("was",)

    def __enter__(self) -> None:
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc) -> None:
        if self.was:
            gc.enable()


def _has_repeats(dests: Sequence[Destination]) -> bool:
    if isinstance(dests, DestinationRows):
        return dests.has_repeats()
    return len({(d.af, d.addr, d.port) for d in dests}) != len(dests)


def _key(obj) -> ServiceKey:
    if isinstance(obj, ServiceKey):
        return obj
    if isinstance(obj, Service):
        return obj.key
    raise ValueError(f"a ServiceKey or Service is needed, not {obj!r}")


def _service(r: Request) -> Service:
    if not isinstance(r.service, Service):
        raise ValueError(f"{r.op} needs a Service, not {r.service!r}")
    return r.service


def _dest(r: Request) -> Destination:
    if r.dest is None:
        raise ValueError(f"{r.op} needs a Destination")
    return r.dest


def _timeouts(r: Request) -> Timeouts:
    if r.timeouts is None:
        raise ValueError(f"{r.op} needs Timeouts")
    return r.timeouts


def _daemon(r: Request) -> Daemon:
    if r.daemon is None:
        raise ValueError(f"{r.op} needs a Daemon")
    return r.daemon


#: op -> function(family, request) -> message bytes.
ENCODERS: dict[str, Callable[[int, Request], bytes]] = {
    OP_ADD_SERVICE: lambda f, r: codec.encode_new_service(f, _service(r)),
    OP_EDIT_SERVICE: lambda f, r: codec.encode_set_service(f, _service(r)),
    OP_DEL_SERVICE: lambda f, r: codec.encode_del_service(f, _key(r.service)),
    OP_ZERO: lambda f, r: codec.encode_zero(f, None if r.service is None else _key(r.service)),
    OP_FLUSH: lambda f, r: codec.encode_flush(f),
    OP_ADD_DEST: lambda f, r: codec.encode_new_dest(f, _key(r.service), _dest(r)),
    OP_EDIT_DEST: lambda f, r: codec.encode_set_dest(f, _key(r.service), _dest(r)),
    OP_DEL_DEST: lambda f, r: codec.encode_del_dest(f, _key(r.service), _dest(r)),
    OP_SET_TIMEOUTS: lambda f, r: codec.encode_set_timeouts(f, _timeouts(r)),
    OP_START_DAEMON: lambda f, r: codec.encode_new_daemon(f, _daemon(r)),
    OP_STOP_DAEMON: lambda f, r: codec.encode_del_daemon(f, _daemon(r)),
}


def encode_request(family: int, request: Request) -> bytes:
    """The netlink message for one Request (ValueError if it is malformed)."""
    try:
        enc = ENCODERS[request.op]
    except KeyError:
        raise ValueError(f"unknown operation {request.op!r}") from None
    try:
        return enc(family, request)
    except (OSError, OverflowError, struct.error) as e:  # bad address, value out of range
        raise ValueError(f"{request.op}: {e}") from None


class NetlinkBackend:
    """Backend over a generic-netlink socket, optionally in a named netns."""

    def __init__(self, netns: str | None = None, *, transport: Transport | None = None):
        self._t = transport if transport is not None else Transport(netns)
        self.family = self._t.family
        self.netns = netns
        self._info: Info | None = None

    # --- reads -------------------------------------------------------------

    def info(self) -> Info:
        # Version and connection-table size are fixed while the module is
        # loaded: asked once (open_backend asks first, as ipvsadm's init does).
        if self._info is None:
            self._info = codec.decode_info(self._one(codec.encode_get_info(self.family), OP_GET_INFO))
        return self._info

    def timeouts(self) -> Timeouts:
        return codec.decode_timeouts(self._one(codec.encode_get_timeouts(self.family), OP_GET_TIMEOUTS))

    def service(self, key: ServiceKey) -> Service:
        return codec.decode_service(self._one(codec.encode_get_service(self.family, key), OP_GET_SERVICE))

    def services(self) -> list[Service]:
        return self._retrying(self._services_once, OP_GET_SERVICES)

    def destinations(self, key: ServiceKey) -> list[Destination]:
        dests = self._retrying(lambda: self._dests_once(key), OP_GET_DESTS)
        if not dests:
            # The kernel answers an empty dump for a missing service; tell
            # "no destinations" from "no such service" the way ipvsadm does.
            try:
                self.service(key)
            except KernelError as e:
                raise KernelError(e.errno, OP_GET_DESTS) from None
        return dests

    def table(self, counters: bool = True) -> list[tuple[Service, Sequence[Destination]]]:
        """Every service with its destinations.  ``counters=False``: the
        destinations may come without stats, as DestinationRows (the plain
        listings, which print no counters, read those columns directly)."""
        read_dests = self._dests_once if counters else self._dest_rows_once
        for _ in range(READ_RETRIES):
            try:
                services, identity = self._services_and_identity()
                keys = [s.key for s in services]
                if len(set(keys)) != len(keys):
                    continue  # an entry repeated: the table moved during the dump
                result = []
                for svc in services:
                    dests = read_dests(svc.key)
                    if _has_repeats(dests):
                        raise DumpInterrupted(OP_GET_DESTS)
                    result.append((svc, dests))
                # A service came, went or changed while we read: compared on
                # the dump's bytes without counters, not decoded again.
                if services and self._service_identity() != identity:
                    continue
                return result
            except DumpInterrupted:
                continue
            except KernelError as e:
                if e.errno != _errno.ESRCH:
                    raise
        raise KernelError(_errno.EAGAIN, OP_GET_SERVICES)

    def daemons(self) -> list[Daemon]:
        def read() -> list[Daemon]:
            msg = codec.encode_dump_daemons(self.family)
            return [codec.decode_daemon(p) for p in self._t.dump(msg, OP_GET_DAEMONS)]

        return self._retrying(read, OP_GET_DAEMONS)

    # --- changes -----------------------------------------------------------

    def apply(self, request: Request) -> None:
        self._t.request(encode_request(self.family, request), request.op)

    def apply_many(self, requests: Iterable[Request]) -> dict[int, KernelError]:
        """Apply in order, pipelined; {index: KernelError} for the failures.

        Every request is encoded before anything is sent, so a malformed one
        raises ValueError with nothing applied.
        """
        reqs = requests if isinstance(requests, (list, tuple)) else list(requests)
        fam = self.family
        msgs = [encode_request(fam, r) for r in reqs]
        return {i: KernelError(err, reqs[i].op) for i, err in self._t.batch(msgs).items()}

    def read_proc_net(self, name: str) -> str:
        """/proc/net/NAME of this backend's namespace (connections have no
        netlink dump: ipvsadm -c reads /proc/net/ip_vs_conn too).  The file
        shows the namespace of whoever opened it, so open it from inside."""
        if self.netns is None:
            with open(f"/proc/net/{name}") as f:
                return f.read()
        from ipvsctl.netlink.transport import in_netns

        with in_netns(self.netns, lambda: open(f"/proc/thread-self/net/{name}")) as f:
            return f.read()

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> "NetlinkBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- helpers -----------------------------------------------------------

    def _one(self, msg: bytes, op: str):
        replies = self._t.request(msg, op)
        if not replies:
            raise KernelError(_errno.ENODATA, op)
        return replies[0]

    def _services_once(self) -> list[Service]:
        decode = codec.decode_service
        with _GCPaused():
            return [decode(p) for p in self._t.dump(codec.encode_dump_services(self.family), OP_GET_SERVICES)]

    def _services_and_identity(self) -> tuple[list[Service], list[bytes]]:
        decode, ident = codec.decode_service, codec.service_identity
        with _GCPaused():
            payloads = list(self._t.dump(codec.encode_dump_services(self.family), OP_GET_SERVICES))
            return [decode(p) for p in payloads], [ident(p) for p in payloads]

    def _service_identity(self) -> list[bytes]:
        ident = codec.service_identity
        return [ident(p) for p in self._t.dump(codec.encode_dump_services(self.family), OP_GET_SERVICES)]

    def _dests_once(self, key: ServiceKey) -> list[Destination]:
        decode = codec.decode_dest
        af = key.af
        with _GCPaused():
            return [decode(p, af) for p in self._t.dump(codec.encode_dump_dests(self.family, key), OP_GET_DESTS)]

    def _dest_rows_once(self, key: ServiceKey) -> Sequence[Destination]:
        """One service's destinations without counters: DestinationRows when
        every entry is a plain IPv4 one (decoded a received buffer at a time),
        otherwise a list of Destination."""
        rows: DestinationRows | None = None
        other: list[Destination] = []
        af = key.af
        with _GCPaused():
            for run in self._t.dump_runs(codec.encode_dump_dests(self.family, key), OP_GET_DESTS):
                got = None if other else codec.decode_dest_run(run)
                if got is None:
                    other.extend(codec.decode_dest(p, af) for _t, _f, _s, p in codec.iter_messages(run))
                elif rows is None:
                    rows = got
                else:
                    rows.extend(got)
        if other:
            return [*(rows or ()), *other]
        return rows if rows is not None else []

    @staticmethod
    def _retrying(read: Callable[[], list], op: str) -> list:
        for _ in range(READ_RETRIES):
            try:
                return read()
            except DumpInterrupted:
                continue
        raise KernelError(_errno.EAGAIN, op)


def open_backend(netns: str | None = None) -> NetlinkBackend:
    """The netlink backend, in the named network namespace when given."""
    return NetlinkBackend(netns)


__all__ = [
    "BatchOverrun",
    "DumpInterrupted",
    "IPVSUnavailable",
    "NetlinkBackend",
    "NetnsNotFound",
    "encode_request",
    "open_backend",
]
