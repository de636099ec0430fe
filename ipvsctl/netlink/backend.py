"""The Backend that speaks generic netlink to the kernel's IPVS.

Strategy: a thin layer joining the pure codec (bytes <-> model; its memos
are this backend's ``codec.Codec``) to the transport (socket, requests,
pipelined batches) and its reader of dumps (``dumps.DumpReader``).  Each
Backend method is one encoder, one exchange and one decoder; the only logic
of its own is reading lists that are never silently torn.  IPVS dumps are
positional and the kernel never flags one that crossed a change, so a list
that changes between two parts of a dump comes back with an entry repeated
or skipped.  Every list read here (the services, each service's real
servers) is accepted only when it provably holds each entry that existed
throughout the read exactly once (``consistency``): a dump read in one pass
under the kernel's lock (``consistency.DumpShape``) is whole by itself; any
other is checked against an atomic snapshot of the list's keys
(``legacy.LegacySnapshots``, IPv4) or, where the kernel offers none (IPv6),
against a second dump.  A list that fails is read again, a bounded number of
times, then ``InconsistentRead`` says so.

Imports nothing heavy: no pyroute2, json or rich; ctypes only when a network
namespace is entered or a snapshot is needed.
"""

from __future__ import annotations

import errno as _errno
import gc

from ipvsctl.backend import (
    OP_GET_DAEMONS,
    OP_GET_DESTS,
    OP_GET_INFO,
    OP_GET_SERVICE,
    OP_GET_SERVICES,
    OP_GET_TIMEOUTS,
    Batch,
    KernelError,
    Request,
)
from ipvsctl.model import AF_INET, Daemon, Destination, Info, Service, ServiceKey, Timeouts
from ipvsctl.netlink import consistency, decode, encode, runs, wire
from ipvsctl.netlink.codec import Codec
from ipvsctl.netlink.consistency import ServiceGone, SnapshotUnavailable as Unavailable
from ipvsctl.netlink.rows import DestinationRows
from ipvsctl.netlink.dumps import DumpBroken, DumpInterrupted, DumpReader
from ipvsctl.netlink.transport import MalformedReply, RepliesLost, Transport

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: collections.abc imports collections (start-up time)
    from collections.abc import Callable, Iterable, Sequence

#: How many times a list is read before giving up when it keeps changing.
READ_RETRIES = 5
#: table() decodes small services' real servers together, this many at a
#: time (their received buffers are held until then: a dump kept this way
#: came in one pass, at most 12 KiB, so a few MB at most, usually ~0.5).
PENDING_DECODED_AT = 256


class _Pending:
    """A small service's real-server dump, received whole in one run and not
    decoded yet (see NetlinkBackend._dest_rows_once)."""

    __slots__ = ("run", "af")

    def __init__(self, run, af: int):
        self.run = run
        self.af = af


class InconsistentRead(KernelError):
    """A list changed during every one of READ_RETRIES reads: no copy of it
    could be shown to be one that existed.  errno EAGAIN."""

    def __init__(self, op: str = "", attempts: int = READ_RETRIES):
        super().__init__(_errno.EAGAIN, op)
        self.attempts = attempts


def _gave_up(op: str, last: Exception | None) -> KernelError:
    """What to raise after READ_RETRIES failed reads: the replies' own fault
    when the last read failed for one (lost, malformed), else InconsistentRead."""
    if isinstance(last, DumpBroken):
        return last.cause
    if isinstance(last, (RepliesLost, MalformedReply)):
        return last
    return InconsistentRead(op)


def _decoding(op: str, in_dump: bool = False):
    """Decoding errors of the kernel's bytes as MalformedReply (a KernelError);
    in a dump, as DumpBroken, so that the dump is read again."""
    return _Decoding(op, in_dump)


class _Decoding:
    __slots__ = ("op", "in_dump")

    def __init__(self, op: str, in_dump: bool):
        self.op = op
        self.in_dump = in_dump

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind, value, tb) -> bool:
        if kind is not None and issubclass(kind, wire.DecodeError):
            error = MalformedReply(self.op, str(value))
            raise (DumpBroken(error) if self.in_dump else error) from None
        return False


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


class EncodedBatch(Batch):
    """Requests encoded as they are added, back to back in one bytearray,
    with the end of each in an array: what a restore holds between checking
    its input and sending it.  A real server's request is 164 bytes, so a
    million lines hold ~165 MB here, where Request values would take ~250
    bytes a line more; and sending is slicing, each request encoded once."""

    def __init__(self, backend: NetlinkBackend | None, family: int = 0):
        from array import array

        self.backend = backend
        self.family = backend.family if backend is not None else family
        self.idents = backend._codec.idents if backend is not None else Codec().idents
        self.data = bytearray()
        self.ends = array("L")

    @classmethod
    def unsent(cls) -> EncodedBatch:
        """A batch encoded as a backend's would be (family id 0: there is
        no conversation to ask it of) and never sent: a dry run's."""
        return cls(None)

    def v4_dests(self) -> encode.V4Dests:
        """IPv4 real servers added from their parts (restore_stream)."""
        return encode.V4Dests(self.family, self.idents, self.data, self.ends)

    def add(self, request: Request) -> None:
        data = self.data
        data += encode.encode_request(self.family, request, self.idents)
        self.ends.append(len(data))

    def __len__(self) -> int:
        return len(self.ends)

    def send(self, start: int, stop: int, should_stop=None) -> tuple[dict[int, int], int]:
        return self.backend._t.send_packed(self.data, self.ends, start, stop, should_stop)


class NetlinkBackend:
    """Backend over a generic-netlink socket, optionally in a named netns."""

    def __init__(self, netns: str | None = None, *, transport: Transport | None = None):
        self._t = transport if transport is not None else Transport(netns)
        self._dumps = DumpReader(self._t)
        self.family = self._t.family
        self._codec = Codec()  # its memos: learned layouts, encoded service identities
        self.netns = netns
        self._info: Info | None = None
        self._legacy = False  # legacy.LegacySnapshots once opened; None if unusable

    # --- reads -------------------------------------------------------------

    def info(self) -> Info:
        # Version and connection-table size are fixed while the module is
        # loaded: asked once (open_backend asks first, as ipvsadm's init does).
        if self._info is None:
            with _decoding(OP_GET_INFO):
                self._info = decode.decode_info(self._one(encode.encode_get_info(self.family), OP_GET_INFO))
        return self._info

    def timeouts(self) -> Timeouts:
        with _decoding(OP_GET_TIMEOUTS):
            return decode.decode_timeouts(self._one(encode.encode_get_timeouts(self.family), OP_GET_TIMEOUTS))

    def service(self, key: ServiceKey) -> Service:
        with _decoding(OP_GET_SERVICE):
            return self._codec.service(self._one(self._codec.get_service(self.family, key), OP_GET_SERVICE))

    def services(self) -> list[Service]:
        last = None
        for _ in range(READ_RETRIES):
            try:
                services, one_pass, _idents = self._service_list()
                if one_pass:
                    return services
                now = self._service_snapshot(others=True)
            except DumpInterrupted as e:
                last = e
                continue
            if consistency.covers_services(services, now, now):
                return services
            last = None
        raise _gave_up(OP_GET_SERVICES, last)

    def destinations(self, key: ServiceKey) -> list[Destination]:
        dests = self._dest_list(key, counters=True)
        if dests is None:
            raise KernelError(_errno.ESRCH, OP_GET_DESTS)
        if not dests:
            # The kernel answers an empty dump for a missing service; tell
            # "no destinations" from "no such service" the way ipvsadm does.
            try:
                self.service(key)
            except KernelError as e:
                raise KernelError(e.errno, OP_GET_DESTS) from None
        return list(dests)

    def table(self, counters: bool = True) -> list[tuple[Service, Sequence[Destination]]]:
        """Every service with its destinations.  ``counters=False``: the
        services come without stats, and the destinations may come without
        them, as DestinationRows (the plain listings, which print no
        counters, read those columns directly).

        Each service's real servers are checked (and read again) on their
        own; the service list is checked at the end, against snapshots taken
        right after its dump and after the last real server was read.  A
        service that went away during the read is left out.
        """
        last = None
        for _ in range(READ_RETRIES):
            try:
                services, one_pass, idents = self._service_list(counters)
                listed_others = any(s.key.af != AF_INET for s in services)
                by_identity = idents is not None
                before = None if one_pass else self._service_snapshot(listed_others, by_identity)
            except DumpInterrupted as e:
                last = e
                continue
            result = []
            pending: list[int] = []  # indexes in result of undecoded small services
            with _GCPaused():
                for k, svc in enumerate(services):
                    if counters:
                        dests = self._dest_list(svc.key, True)
                    else:
                        dests = self._dest_rows(svc.key, idents[k] if by_identity else None)
                    if dests is not None:  # None: the service is gone
                        if dests.__class__ is _Pending:
                            pending.append(len(result))
                        result.append((svc, dests))
                        if len(pending) >= PENDING_DECODED_AT:
                            self._decode_entries(result, pending)
                self._decode_entries(result, pending)
            if None in result:  # a service gone while its dump was read again
                result = [entry for entry in result if entry is not None]
            empty = [svc.key for svc, dests in result if not dests]
            if before is None and not empty:
                return result  # one pass, and every service seen alive since
            try:
                after = self._service_snapshot(before is not None or listed_others, by_identity)
            except DumpInterrupted as e:
                last = e
                continue
            if before is not None and not consistency.covers_services(services, before, after, idents):
                last = None
                continue
            # An empty real-server dump does not say whether the service is
            # still there (the kernel answers one for a missing service).
            identity = dict(zip([svc.key for svc in services], idents)) if by_identity and empty else {}
            gone = {key for key in empty if not self._still_there(key, after, identity.get(key))}
            return [entry for entry in result if entry[0].key not in gone] if gone else result
        raise _gave_up(OP_GET_SERVICES, last)

    def _decode_entries(self, result: list, pending: list[int]) -> None:
        """Decode the undecoded real servers of result[i] for i in pending
        (emptied).  A dump that does not decode is read again, with the
        retries of any read; result[i] becomes None if its service went
        away meanwhile."""
        if pending:
            decoded = self._decode_pending([result[i][1] for i in pending])
            for i, dests in zip(pending, decoded):
                svc = result[i][0]
                if dests is None:
                    dests = self._dest_list(svc.key, False)
                result[i] = None if dests is None else (svc, dests)
            pending.clear()

    def daemons(self) -> list[Daemon]:
        def read() -> list[Daemon]:
            msg = encode.encode_dump_daemons(self.family)
            with _decoding(OP_GET_DAEMONS, in_dump=True):
                return [decode.decode_daemon(p) for p in self._dumps.dump(msg, OP_GET_DAEMONS)]

        return self._retrying(read, OP_GET_DAEMONS)

    # --- changes -----------------------------------------------------------

    def apply(self, request: Request) -> None:
        self._t.request(self._codec.request(self.family, request), request.op)

    def apply_many(self, requests: Iterable[Request]) -> dict[int, KernelError]:
        """Apply in order, pipelined; {index: KernelError} for the failures.

        Every request is encoded before anything is sent, so a malformed one
        raises ValueError with nothing applied.
        """
        reqs = requests if isinstance(requests, (list, tuple)) else list(requests)
        fam, encode_request, idents = self.family, encode.encode_request, self._codec.idents
        msgs = [encode_request(fam, r, idents) for r in reqs]
        return {i: KernelError(err, reqs[i].op) for i, err in self._t.batch(msgs).items()}

    def batch(self) -> EncodedBatch:
        """A Batch that encodes each request as it is added (see EncodedBatch)."""
        return EncodedBatch(self)

    def read_proc_net(self, name: str) -> str:
        """/proc/net/NAME of this backend's namespace (connections have no
        netlink dump: ipvsadm -c reads /proc/net/ip_vs_conn too).  The file
        shows the namespace of whoever opened it, so open it from inside."""
        if self.netns is None:
            with open(f"/proc/net/{name}") as f:
                return f.read()
        from ipvsctl.netlink.netns import in_netns

        with in_netns(self.netns, lambda: open(f"/proc/thread-self/net/{name}")) as f:
            return f.read()

    def close(self) -> None:
        if self._legacy:
            self._legacy.close()
        self._t.close()

    def __enter__(self) -> "NetlinkBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- helpers -----------------------------------------------------------

    def _one(self, msg: bytes, op: str):
        replies = self._t.request(msg, op, idempotent=True)
        if not replies:
            raise KernelError(_errno.ENODATA, op)
        return replies[0]

    def _service_list(self, counters: bool = True) -> tuple[list[Service], bool, list[bytes] | None]:
        """(the services of one dump, repeats dropped; whether the dump was
        read in one pass and had no repeat; each service's identity as the
        kernel wrote it (encode.entry_identity), or None when an entry has
        none).  Without ``counters`` their stats are None.  DumpInterrupted:
        read again."""
        decode_service = self._codec.service if counters else self._codec.service_without_counters
        with _GCPaused(), _decoding(OP_GET_SERVICES, in_dump=True):
            payloads = list(self._dumps.dump(encode.encode_dump_services(self.family), OP_GET_SERVICES))
            services = list(map(decode_service, payloads))
            idents = list(map(encode.entry_identity, payloads))
        if None in idents:
            idents = None
        shape = self._dumps.dump_shape
        if shape.one_pass:
            return services, True, idents  # one pass under the kernel's lock: nothing can repeat
        if shape.parts > 1:
            kept, repeated = consistency.without_repeated_services(services)
            if repeated and idents is not None:
                first = {}
                for svc, ident in zip(services, idents):
                    first.setdefault(svc.key, ident)
                idents = [first[svc.key] for svc in kept]
            services = kept
        return services, False, idents

    def _service_snapshot(self, others: bool, by_identity: bool = False) -> consistency.ServiceSnapshot:
        """The service keys of this moment: IPv4 atomically (socket
        options); the other families from a netlink dump, when ``others``
        (or every family, when the socket options fail).  One rule for that
        dump: the entries the socket options hold (IPv4) are dropped first,
        by the family read in place, and nothing else is made of them; the
        rest are held by their decoded keys or, with ``by_identity`` and
        when every one of them has one, by their identities
        (encode.entry_identity): compared as bytes, ~3 us per service less."""
        legacy = self._legacy_snapshots()
        ipv4 = None
        if legacy is not None:
            try:
                ipv4 = set(legacy.service_keys())
            except Unavailable:
                self._legacy = None
        if ipv4 is not None and not others:
            return consistency.ServiceSnapshot(ipv4, None)
        msg = encode.encode_dump_services(self.family)
        with _GCPaused(), _decoding(OP_GET_SERVICES, in_dump=True):
            entries = self._dumps.dump(msg, OP_GET_SERVICES)
            if ipv4 is None:
                entries = list(entries)
            else:  # IPv4 is the atomic snapshot's: its entries are dropped unread
                family = decode.service_family
                entries = [p for p in entries if family(p) != AF_INET]
            one_pass = self._dumps.dump_shape.one_pass
            if by_identity:
                idents = list(map(encode.entry_identity, entries))
                if None not in idents:
                    return consistency.ServiceSnapshot(ipv4, idents, one_pass, by_identity=True)
            keys = list(map(self._codec.service_key, entries))
        return consistency.ServiceSnapshot(ipv4, keys, one_pass)

    def _still_there(self, key: ServiceKey, snapshot: consistency.ServiceSnapshot,
                     ident: bytes | None = None) -> bool:
        held = snapshot.holds(key, ident)
        if held is not None:
            return held
        try:
            self.service(key)  # one GET: answered under the kernel's lock
        except KernelError as e:
            if e.errno == _errno.ESRCH:
                return False
            raise
        return True

    def _dest_rows(self, key: ServiceKey, ident: bytes | None = None) -> Sequence[Destination] | _Pending | None:
        """_dest_list without counters, deferred, for a table: a small
        service's dump, read whole in one pass (DumpReader.dump_small), is
        taken as it is, with no further check; any other goes the general
        way, from the datagrams already read.  ``ident``: the service's
        identity (encode.entry_identity), which names it in the request."""
        msg = (self._codec.dump_dests_of(self.family, ident) if ident is not None
               else self._codec.dump_dests(self.family, key))
        try:
            got = self._dumps.dump_small(msg, OP_GET_DESTS)
        except DumpInterrupted:
            return self._dest_list(key, False, defer=True)  # read again, with the retries of any read
        if isinstance(got, bytes):
            return _Pending(got, key.af) if got else []
        return self._dest_list(key, False, defer=True, started=got)

    def _dest_list(self, key: ServiceKey, counters: bool, defer: bool = False, started=None
                   ) -> Sequence[Destination] | _Pending | None:
        """One service's real servers, each that existed throughout the read
        exactly once; None if the service went away meanwhile.  ``defer``
        (without counters): a small service's may come undecoded (_Pending).
        ``started``: the first read's dump, already under way (its runs)."""
        read = self._dests_once if counters else self._dest_rows_once
        last = None
        for _ in range(READ_RETRIES):
            # The dump already under way serves the first read only: one it
            # broke off (flagged, lost, malformed) is spent, and a retry that
            # took it again would find it empty, in the broken dump's shape.
            first, started = started, None
            try:
                dests = read(key) if counters else read(key, defer, first)
                shape = self._dumps.dump_shape
                if shape.one_pass:
                    return dests  # one pass under the kernel's lock: nothing can repeat
                if isinstance(dests, _Pending):
                    dests = self._decode_pending([dests])[0]
                    if dests is None:
                        raise DumpBroken(MalformedReply(OP_GET_DESTS, "a real-server entry does not decode"))
                if shape.parts > 1:
                    dests, _ = consistency.without_repeated_dests(dests)
                if self._dests_confirmed(key, dests, read):
                    return dests
                last = None
            except DumpInterrupted as e:
                last = e
            except ServiceGone:
                return None
        raise _gave_up(OP_GET_DESTS, last)

    def _dests_confirmed(self, key: ServiceKey, dests: Sequence[Destination], read) -> bool:
        """Does a dump that was not read in one pass hold every real server
        that existed throughout?  IPv4 servers of an IPv4 service are checked
        against an atomic snapshot; any others (an IPv6 service, IPv6
        servers behind an IPv4 one, no snapshot possible) against a second
        dump, which catches a skip unless the second dump skips the same
        server (no atomic read of those exists).  Raises ServiceGone."""
        foreign_only = False
        if key.af == AF_INET:
            planes = self._dest_snapshot(key, len(dests))
            if planes is not None:
                if not consistency.covers_ipv4_snapshot(dests, planes):
                    return False
                if not consistency.has_foreign_dests(dests, key.af):
                    return True
                foreign_only = True  # the IPv6 servers of this IPv4 service are left to check
        again, _ = consistency.without_repeated_dests(read(key))
        if foreign_only:
            again = [d for d in again if d.af != AF_INET]
        return consistency.covers_dests(dests, again)

    def _dest_snapshot(self, key: ServiceKey, expect: int) -> tuple[bytes, ...] | None:
        legacy = self._legacy_snapshots()
        if legacy is None:
            return None
        try:
            return legacy.dest_planes(*consistency.legacy_service_key(key), expect=expect)
        except Unavailable:
            self._legacy = None
            return None

    def _legacy_snapshots(self):
        """The socket-option snapshots (legacy.LegacySnapshots), opened on
        first use; None once they proved unusable here (then every check
        falls back to a second dump)."""
        if self._legacy is False:
            from ipvsctl.netlink.legacy import LegacySnapshots  # only when a dump needs checking

            self._legacy = LegacySnapshots(self.netns)
        return self._legacy

    def _dests_once(self, key: ServiceKey) -> list[Destination]:
        decode_dest = self._codec.dest
        af = key.af
        with _GCPaused(), _decoding(OP_GET_DESTS, in_dump=True):
            msg = self._codec.dump_dests(self.family, key)
            return [decode_dest(p, af) for p in self._dumps.dump(msg, OP_GET_DESTS)]

    def _dest_rows_once(self, key: ServiceKey, defer: bool = False, started=None) -> Sequence[Destination]:
        """One service's destinations without counters: DestinationRows when
        every entry is a plain IPv4 one (decoded a received buffer at a time),
        otherwise a list of Destination.  ``defer``: a dump that came as one
        run (a small service) is returned undecoded, as _Pending, for
        _decode_pending to decode with others."""
        rows: DestinationRows | None = None
        other: list[Destination] = []
        held = None  # the first run, until a second one comes
        af = key.af
        with _GCPaused(), _decoding(OP_GET_DESTS, in_dump=True):
            if started is None:
                started = self._dumps.dump_runs(self._codec.dump_dests(self.family, key), OP_GET_DESTS)
            for run in started:
                if held is None and rows is None and not other:
                    held = run
                    continue
                if held is not None:
                    rows = self._add_run(held, rows, other, af)
                    held = None
                rows = self._add_run(run, rows, other, af)
            if held is not None:
                if defer:
                    return _Pending(held, af)
                rows = self._add_run(held, rows, other, af)
        if other:
            return [*(rows or ()), *other]
        return rows if rows is not None else []

    def _add_run(self, run, rows: DestinationRows | None, other: list, af: int) -> DestinationRows | None:
        """Decode one run into ``rows`` (columns) or, once any entry needs
        the general decoder, into ``other``; the rows so far."""
        got = None if other else self._codec.dest_run(run)
        if got is None:
            other.extend(self._codec.dest(p, af) for _t, _f, _s, p in wire.iter_messages(run))
        elif rows is None:
            return got
        else:
            rows.extend(got)
        return rows

    def _decode_pending(self, pending: list[_Pending]) -> list[Sequence[Destination] | None]:
        """The real servers of many small services at once
        (runs.decode_dest_runs); None for a dump that does not decode (as a
        dump read at once would be, it is then read again)."""
        out: list[Sequence[Destination] | None] = []
        with _GCPaused():
            decoded = runs.decode_dest_runs([p.run for p in pending], self._codec.run_layouts)
            for p, rows in zip(pending, decoded):
                if rows is None:
                    try:
                        rows = [self._codec.dest(e, p.af) for _t, _f, _s, e in wire.iter_messages(p.run)]
                    except wire.DecodeError:
                        rows = None
                out.append(rows)
        return out

    @staticmethod
    def _retrying(read: Callable[[], list], op: str) -> list:
        last = None
        for _ in range(READ_RETRIES):
            try:
                return read()
            except DumpInterrupted as e:
                last = e
        raise _gave_up(op, last)


__all__ = ["InconsistentRead", "NetlinkBackend"]
