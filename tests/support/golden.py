"""Golden files: the real ipvsadm's outputs and the kernel's answers, replayed
without a kernel.

Strategy
--------
``tests/kernel/record_golden.py`` builds tables in a real IPVS kernel (User-Mode
Linux) with the real ipvsadm and writes, per scenario, one JSON file under
tests/data/golden/: every command line with ipvsadm's exit status, stdout
and stderr, and the kernel's state around it as the kernel's own netlink
answers (raw datagrams: the services dump, each service's real-server dump,
the info, timeouts and daemon replies, and /proc/net/ip_vs_conn).

The unit tier replays each line through ipvsctl's whole command path
(``cli.run_compat``: grammar, ops, backend, transport, codec, renderers) on a
``ReplayKernel``: a fake netlink socket that answers ipvsctl's requests from
the recorded state.  Requests are understood by what they ask (command and
service, decoded with pyroute2, an independent decoder), not matched by their
bytes, so ipvsctl may read the table in any order or any number of times.
Change requests are kept (``ReplayKernel.changes``) and answered with the
errno the kernel gave that line in the recording; ``kernel_model`` checks
that they turn the state before the line into the state after it.

File format (``FORMAT``): ``blobs`` holds each distinct datagram once
(base64); a state names its datagrams by index.  ``resolver`` holds every
name look-up (host and service names, both ways) the recording needed, as
the guest's resolver answered it, so that replay never asks the host's.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import struct
from pathlib import Path

FORMAT = "ipvsctl-golden-1"
GOLDEN_DIR = Path(__file__).resolve().parents[1] / "data" / "golden"

_HDR = struct.Struct("=IHHII")  # nlmsghdr
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_CAPPED = 0x100

# IPVS generic-netlink commands (linux/ip_vs.h), written out: this module
# must not lean on ipvsctl's own constants to judge ipvsctl.
CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
CMD_NEW_DAEMON, CMD_DEL_DAEMON, CMD_GET_DAEMON = 9, 10, 11
CMD_SET_CONFIG, CMD_GET_CONFIG, CMD_SET_INFO, CMD_GET_INFO = 12, 13, 14, 15
CMD_ZERO, CMD_FLUSH = 16, 17
CHANGE_CMDS = {CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_NEW_DEST, CMD_SET_DEST,
               CMD_DEL_DEST, CMD_NEW_DAEMON, CMD_DEL_DAEMON, CMD_SET_CONFIG, CMD_ZERO, CMD_FLUSH}


# ---------------------------------------------------------------------------
# The file
# ---------------------------------------------------------------------------


class Golden:
    """One recorded scenario."""

    def __init__(self, name: str, family: int, meta: dict | None = None):
        self.name = name
        self.family = family
        self.meta = meta or {}
        self.blobs: list[bytes] = []
        self._blob_index: dict[bytes, int] = {}
        self.states: list[dict] = []
        self._state_index: dict[str, int] = {}
        self.steps: list[dict] = []
        self.resolver: dict[str, dict] = {"gethostbyaddr": {}, "getservbyport": {},
                                          "gethostbyname": {}, "getservbyname": {}}

    # -- building (the recorder) ---------------------------------------------

    def blob(self, data: bytes) -> int:
        i = self._blob_index.get(data)
        if i is None:
            i = self._blob_index[data] = len(self.blobs)
            self.blobs.append(data)
        return i

    def add_state(self, info, timeouts, services, dests, daemons, conns) -> int:
        """A state from raw datagrams (``dests``: one datagram list per
        service entry, in the services dump's order); equal states are one."""
        state = {
            "info": [self.blob(d) for d in info],
            "timeouts": [self.blob(d) for d in timeouts],
            "services": [self.blob(d) for d in services],
            "dests": [[self.blob(d) for d in ds] for ds in dests],
            "daemons": [self.blob(d) for d in daemons],
            "conns": conns,
        }
        ident = json.dumps(state, sort_keys=True)
        i = self._state_index.get(ident)
        if i is None:
            i = self._state_index[ident] = len(self.states)
            self.states.append(state)
        return i

    def save(self, path: Path) -> int:
        """One step, state and blob per line: a re-recording diffs readably."""
        def rows(items) -> str:
            return "[\n" + ",\n".join("  " + json.dumps(x, sort_keys=True) for x in items) + "\n ]"

        text = (
            "{\n"
            f' "format": {json.dumps(FORMAT)},\n'
            f' "scenario": {json.dumps(self.name)},\n'
            f' "meta": {json.dumps(self.meta, sort_keys=True)},\n'
            f' "family": {self.family},\n'
            f' "steps": {rows(self.steps)},\n'
            f' "resolver": {json.dumps(self.resolver, sort_keys=True)},\n'
            f' "states": {rows(self.states)},\n'
            f' "blobs": {rows(base64.b64encode(b).decode() for b in self.blobs)}\n'
            "}\n"
        )
        path.write_text(text)
        return len(text)

    @classmethod
    def load(cls, path: Path) -> "Golden":
        doc = json.loads(Path(path).read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file")
        g = cls(doc["scenario"], doc["family"], doc["meta"])
        g.blobs = [base64.b64decode(b) for b in doc["blobs"]]
        g.states = doc["states"]
        g.steps = doc["steps"]
        g.resolver = doc["resolver"]
        return g

    def datagrams(self, state: dict, part: str) -> list[bytes]:
        return [self.blobs[i] for i in state[part]]


def golden_files() -> list[Path]:
    return sorted(GOLDEN_DIR.glob("*.json"))


# ---------------------------------------------------------------------------
# Netlink, read independently of ipvsctl
# ---------------------------------------------------------------------------


def messages(buf: bytes):
    """(type, flags, seq, payload, offset) of each netlink message in buf."""
    off = 0
    while off + 16 <= len(buf):
        length, mtype, flags, seq, _pid = _HDR.unpack_from(buf, off)
        if length < 16 or off + length > len(buf):
            raise ValueError(f"bad netlink message length {length} at {off}")
        yield mtype, flags, seq, bytes(buf[off + 16:off + length]), off
        off += (length + 3) & ~3


def reseq(datagram: bytes, seq: int) -> bytes:
    out = bytearray(datagram)
    for _t, _f, _s, _p, off in messages(datagram):
        struct.pack_into("=I", out, off + 8, seq)
    return bytes(out)


def nla(buf: bytes, start: int = 0, end: int | None = None) -> dict[int, bytes]:
    """{type: value} of the attributes in buf[start:end] (a tiny walker of
    our own, for what pyroute2 leaves undecoded)."""
    end = len(buf) if end is None else end
    out = {}
    while start + 4 <= end:
        alen, atype = struct.unpack_from("=HH", buf, start)
        if alen < 4 or start + alen > end:
            raise ValueError(f"bad attribute length {alen}")
        out[atype & 0x3FFF] = bytes(buf[start + 4:start + alen])
        start += (alen + 3) & ~3
    return out


_IPVSMSG = None


def pyroute2_decode(message: bytes):
    """The message (with its nlmsghdr) decoded by pyroute2's IPVS schema."""
    global _IPVSMSG
    if _IPVSMSG is None:
        from pyroute2.netlink.generic.ipvs import ipvsmsg

        _IPVSMSG = ipvsmsg
    m = _IPVSMSG(message)
    m.decode()
    return m


def service_key(attrs: dict) -> tuple:
    """What names a service, from pyroute2's attributes of a SERVICE nest."""
    af = attrs["IPVS_SVC_ATTR_AF"]
    if attrs.get("IPVS_SVC_ATTR_FWMARK"):
        return (af, attrs["IPVS_SVC_ATTR_FWMARK"])
    return (af, attrs.get("IPVS_SVC_ATTR_PROTOCOL"), attrs.get("IPVS_SVC_ATTR_ADDR"),
            attrs.get("IPVS_SVC_ATTR_PORT"))


def nested(m, name: str) -> dict | None:
    attr = m.get_attr(name)
    return None if attr is None else dict(attr["attrs"])


# ---------------------------------------------------------------------------
# The replaying socket
# ---------------------------------------------------------------------------


class ReplayError(AssertionError):
    """ipvsctl asked something the recording cannot answer."""


class ReplayKernel:
    """A netlink socket answering from one recorded kernel state."""

    RCVBUF = 16 << 20
    SNDBUF = 8 << 20

    def __init__(self, golden: Golden, state: dict, change_errno: int | None = None):
        self.golden = golden
        self.family = golden.family
        self.state = state
        self.change_errno = change_errno or 0
        self.changes: list[tuple[int, bytes]] = []  # (genl cmd, whole message)
        self.requests: list[int] = []  # genl cmd of every request, in order
        self._queue: list[bytes] = []
        self._keys: list[tuple] | None = None

    # -- socket interface (what ipvsctl's Transport uses) ----------------------

    def send(self, buf) -> int:
        buf = bytes(buf)
        for mtype, flags, seq, payload, off in messages(buf):
            (length,) = struct.unpack_from("=I", buf, off)
            self._answer(mtype, flags, seq, payload, buf[off:off + length])
        return len(buf)

    def recv_into(self, buf, nbytes=0, flags=0) -> int:
        if not self._queue:
            raise ReplayError("ipvsctl waits for an answer the kernel would not send")
        chunk = self._queue.pop(0)
        n = len(chunk)
        buf[:min(n, len(buf))] = chunk[:len(buf)]
        return n

    def getsockopt(self, level, opt):
        return self.RCVBUF if opt == 8 else self.SNDBUF  # SO_RCVBUF is 8

    def setsockopt(self, *a):
        return None

    def close(self):
        pass

    # -- the kernel's side ------------------------------------------------------

    def _error(self, seq: int, errno: int, request: bytes) -> bytes:
        return _HDR.pack(36, NLMSG_ERROR, NLM_F_CAPPED, seq, 0) + struct.pack("=i", -errno) + request[:16]

    def _done(self, seq: int) -> bytes:
        return _HDR.pack(20, NLMSG_DONE, NLM_F_MULTI, seq, 0) + struct.pack("=i", 0)

    def _reply(self, datagrams: list[bytes], seq: int) -> None:
        self._queue.extend(reseq(d, seq) for d in datagrams)

    def keys(self) -> list[tuple]:
        """The key of every recorded service entry, in dump order."""
        if self._keys is None:
            self._keys = []
            for d in self.golden.datagrams(self.state, "services"):
                for mtype, _f, _s, _p, off in messages(d):
                    if mtype == self.family:
                        (length,) = struct.unpack_from("=I", d, off)
                        m = pyroute2_decode(d[off:off + length])
                        self._keys.append(service_key(nested(m, "IPVS_CMD_ATTR_SERVICE")))
        return self._keys

    def _entry(self, index: int) -> bytes:
        """The payload of the index-th service entry."""
        i = 0
        for d in self.golden.datagrams(self.state, "services"):
            for mtype, _f, _s, payload, _off in messages(d):
                if mtype == self.family:
                    if i == index:
                        return payload
                    i += 1
        raise IndexError(index)

    def _answer(self, mtype: int, flags: int, seq: int, payload: bytes, message: bytes) -> None:
        if mtype == NLMSG_NOOP:
            if flags & NLM_F_ACK:  # the barrier
                self._queue.append(self._error(seq, 0, message))
            return
        if mtype != self.family:
            raise ReplayError(f"a request of netlink type {mtype}: not the IPVS family")
        cmd = payload[0]
        self.requests.append(cmd)
        dump = flags & NLM_F_DUMP == NLM_F_DUMP
        if cmd in CHANGE_CMDS:
            self.changes.append((cmd, message))
            if self.change_errno:
                self._queue.append(self._error(seq, self.change_errno, message))
            elif flags & NLM_F_ACK:
                self._queue.append(self._error(seq, 0, message))
            return
        if cmd == CMD_GET_INFO:
            self._reply(self.golden.datagrams(self.state, "info"), seq)
        elif cmd == CMD_GET_CONFIG:
            self._reply(self.golden.datagrams(self.state, "timeouts"), seq)
        elif cmd == CMD_GET_DAEMON and dump:
            self._reply(self.golden.datagrams(self.state, "daemons"), seq)
        elif cmd == CMD_GET_SERVICE and dump:
            self._reply(self.golden.datagrams(self.state, "services"), seq)
        elif cmd == CMD_GET_SERVICE:
            key = service_key(nested(pyroute2_decode(message), "IPVS_CMD_ATTR_SERVICE"))
            if key not in self.keys():
                self._queue.append(self._error(seq, 3, message))  # ESRCH
                return
            p = self._entry(self.keys().index(key))
            self._queue.append(_HDR.pack(16 + len(p), self.family, 0, seq, 0) + p)
        elif cmd == CMD_GET_DEST and dump:
            key = service_key(nested(pyroute2_decode(message), "IPVS_CMD_ATTR_SERVICE"))
            if key in self.keys():
                self._reply([self.golden.blobs[i] for i in self.state["dests"][self.keys().index(key)]], seq)
            else:
                # The kernel's answer for a service that does not exist: an
                # empty dump (not ESRCH; see docs/design.md).
                self._queue.append(self._done(seq))
        else:
            raise ReplayError(f"IPVS command {cmd} (dump={bool(dump)}): no recorded answer")
        if flags & NLM_F_ACK and not dump:
            self._queue.append(self._error(seq, 0, message))

    def proc_net(self, name: str) -> str:
        if name != "ip_vs_conn" or self.state.get("conns") is None:
            raise FileNotFoundError(2, "not recorded", f"/proc/net/{name}")
        return self.state["conns"]


# ---------------------------------------------------------------------------
# Name look-ups, recorded and replayed
# ---------------------------------------------------------------------------


class Resolver:
    """Stands for the C socket module where ipvsctl resolves names: every
    other attribute is the real one.  ``answers`` is a golden's resolver
    table; with ``record`` the real resolver answers and is written down."""

    def __init__(self, real, answers: dict, record: bool = False):
        self._real = real
        self._answers = answers
        self._record = record

    def __getattr__(self, name):
        return getattr(self._real, name)

    def _lookup(self, table: str, key: str, ask):
        answers = self._answers[table]
        if self._record and key not in answers:
            try:
                answers[key] = ask()
            except (OSError, UnicodeError, OverflowError):
                answers[key] = None
        if key not in answers:
            raise ReplayError(f"{table}({key}) was not recorded: record the golden files again")
        value = answers[key]
        if value is None:
            raise OSError(1, f"{table}: not found (as recorded)")
        return value

    def gethostbyaddr(self, addr):
        text = addr.decode() if isinstance(addr, bytes) else addr
        name = self._lookup("gethostbyaddr", text, lambda: self._real.gethostbyaddr(addr)[0])
        return (name, [], [text])

    def getservbyport(self, port, proto=None):
        return self._lookup("getservbyport", f"{port}/{proto}", lambda: self._real.getservbyport(port, proto))

    def gethostbyname(self, name):
        text = name.decode(errors="surrogateescape") if isinstance(name, bytes) else name
        return self._lookup("gethostbyname", text, lambda: self._real.gethostbyname(name))

    def getservbyname(self, name, proto=None):
        return self._lookup("getservbyname", f"{name}/{proto}", lambda: self._real.getservbyname(name, proto))


@contextlib.contextmanager
def resolver(answers: dict, record: bool = False):
    """ipvsctl's name look-ups go to ``answers`` (the caches emptied first)."""
    import _socket

    from ipvsctl import cvalues, names

    proxy = Resolver(_socket, answers, record)
    saved = (names.socket, cvalues.socket)
    names._HOSTS.clear()
    names._PORTS.clear()
    names.socket = cvalues.socket = proxy
    try:
        yield proxy
    finally:
        names.socket, cvalues.socket = saved
        names._HOSTS.clear()
        names._PORTS.clear()


# ---------------------------------------------------------------------------
# Replaying one step through ipvsctl's command path
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def replay_kernel(golden: Golden, state: dict, change_errno: int | None = None):
    """Every backend ipvsctl opens meanwhile talks to a ReplayKernel.

    The seam is the transport's socket: ipvsctl's own open_backend,
    NetlinkBackend, Transport and codec all run.  /proc/net/ip_vs_conn (which
    ipvsadm -c reads too) comes from the recording.
    """
    from ipvsctl.netlink import backend as nb
    from ipvsctl.netlink.transport import Transport

    kernel = ReplayKernel(golden, state, change_errno)

    def transport(netns=None, **kw):
        return Transport(sock=kernel, family=golden.family)

    # The replay must never reach a real kernel: inside User-Mode Linux the
    # socket-option snapshots that check multi-part dumps would read the
    # guest's own (empty) table.  Without them a dump is checked against a
    # second dump, which the unchanging replay always passes.
    saved = nb.Transport, nb.NetlinkBackend.read_proc_net, nb.NetlinkBackend._legacy_snapshots
    nb.Transport = transport
    nb.NetlinkBackend.read_proc_net = lambda self, name: kernel.proc_net(name)
    nb.NetlinkBackend._legacy_snapshots = lambda self: None
    try:
        with resolver(golden.resolver):
            yield kernel
    finally:
        nb.Transport, nb.NetlinkBackend.read_proc_net, nb.NetlinkBackend._legacy_snapshots = saved


def run_step(golden: Golden, step: dict):
    """(status, stdout, stderr, kernel) of ipvsctl run on the step's line,
    the replayed kernel holding the state the line met."""
    from ipvsctl.cli import run_compat

    before = golden.states[step["before"] if "before" in step else step["state"]]
    out, err = io.StringIO(), io.StringIO()
    with replay_kernel(golden, before, step.get("errno")) as kernel:
        status = run_compat(list(step["argv"]), io.StringIO(""), out, err, prog="ipvsadm")
    return status, out.getvalue(), err.getvalue(), kernel
