"""In-process timings of ipvsctl's own work, without a kernel.

Run with the interpreter of the ipvsctl under test (host.py uses a regular
install); imports ``ipvsctl`` from that interpreter's site-packages, never
from the checkout.  Prints one JSON object.

    inproc.py restore SMALL LARGE RUNS
        the -R path minus the kernel: restore.plan + restore.apply through
        the real NetlinkBackend and Transport over an AckSocket (every
        batch answered by its barrier's ACK); seconds per run for each
        file, and the batches' shape (sends, requests, bytes)
    inproc.py dryrun SMALL LARGE RUNS
        `ipvsctl restore --dry-run FILE` in-process, every step the command
        takes after start-up: the file read and decoded a MiB at a time,
        planned and encoded (commands.restore's _LinesJob over an
        EncodedBatch that is never sent), the scheduler names checked by a
        schedulers.Probe whose /proc/modules is data/proc-modules (this host
        has no IPVS modules and no module loader, so the real probe refuses
        every name, correctly), and the report written; seconds per run
    inproc.py replay FIXTURE CMD RUNS
        `ipvsctl CMD` (-Ln or -Sn) as cli.run_compat runs it (info() first,
        then ops.execute, every piece written to /dev/null) over a
        ReplaySocket; one untimed pass first checks the text against
        ipvsadm's sha256 and gives every answer its live sequence numbers;
        then the replay socket's own time for one pass (socket_times: its
        sends and receives alone, which the model takes out); cpu_times:
        each pass's CPU time (process_time), which a loaded machine
        disturbs far less than the wall times (for A/B comparisons)
"""

from __future__ import annotations

import gc
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # benchmarks/, for native.replay

from native.replay import AckSocket, Recording, ReplaySocket  # noqa: E402


def restore_once(path: str):
    from ipvsctl.netlink.backend import NetlinkBackend
    from ipvsctl.netlink.transport import Transport
    from ipvsctl.restore import apply, plan_chunks, stream_chunks

    sock = AckSocket()
    with open(path) as f:
        t0 = time.perf_counter()
        backend = NetlinkBackend(transport=Transport(sock=sock, family=0x20))
        steps = plan_chunks(stream_chunks(f), backend.batch())  # as -R: read in chunks, encoded as checked
        result = apply(steps, backend)
        t = time.perf_counter() - t0
    assert result.status == 0 and not result.failed, result.err[:3]
    return t, {"sends": sock.sends, "requests": result.applied, "bytes": sock.bytes_sent,
               "lines": steps.commands}


def dryrun_once(path: str):
    from ipvsctl import schedulers
    from ipvsctl.commands.restore import _dry_run_report, _Input, _LinesJob
    from ipvsctl.netlink.backend import EncodedBatch

    modules = Path(__file__).resolve().parent / "data" / "proc-modules"
    with open("/dev/null", "w") as sink:
        t0 = time.perf_counter()
        job = _LinesJob(_Input(path), False, EncodedBatch.unsent())
        probe = schedulers.Probe(proc_modules=str(modules), sys_module="/nonexistent",
                                 helper_file="/nonexistent", disabled_file="/nonexistent")
        report = schedulers.check_services(job.located, probe)
        assert not report.refused, report.refusals()
        sink.write(_dry_run_report(job, report))
        t = time.perf_counter() - t0
    return t, {"lines": job.plan.commands, "bytes": len(job.plan.batch.data)}


def cmd_restore(small: str, large: str, runs: int, once=restore_once) -> dict:
    out = {"small": [], "large": []}
    shape = {}
    once(small)  # untimed: the imports and compiled patterns of a first run are no part of a line
    gc.collect()
    for i in range(runs):
        for which in (("small", "large") if i % 2 == 0 else ("large", "small")):
            t, s = once(small if which == "small" else large)
            out[which].append(t)
            shape[which] = s
            gc.collect()
    out["shape"] = shape
    return out


def replay_once(rec: Recording, sock: ReplaySocket | None, cmd: str, sink) -> tuple[float, bytes | None]:
    from ipvsctl.grammar import parse
    from ipvsctl.netlink.backend import NetlinkBackend
    from ipvsctl.netlink.transport import Transport
    from ipvsctl.ops import execute

    digest = hashlib.sha256() if sink is None else None
    t0 = time.perf_counter()
    backend = NetlinkBackend(transport=Transport(sock=sock, family=rec.family))
    backend.info()
    outcome = execute(parse([cmd]), backend)
    pieces = [outcome.out] if isinstance(outcome.out, str) else outcome.out
    if sink is not None:
        write = sink.write
        for piece in pieces:
            write(piece)
        sink.flush()
    else:
        for piece in pieces:
            digest.update(piece.encode())
    t = time.perf_counter() - t0
    assert outcome.status == 0, outcome.err
    return t, digest.hexdigest() if digest else None


def cmd_replay(fixture: str, cmd: str, runs: int) -> dict:
    rec = Recording.load(fixture)
    sock = ReplaySocket(rec)
    _, digest = replay_once(rec, sock, cmd, None)    # warm-up and check
    want = rec.meta[cmd]["sha256"]
    times, cpu_times = [], []
    with open("/dev/null", "w") as sink:
        for _ in range(runs):
            sends, recvs = sock.sends, sock.recvs
            c0 = time.process_time()
            t, _ = replay_once(rec, sock, cmd, sink)
            cpu_times.append(time.process_time() - c0)
            times.append(t)
            gc.collect()
        sends, recvs = sock.sends - sends, sock.recvs - recvs  # of the last pass
        calls = _socket_calls(rec, sock, cmd, sink)
    socket_times = [_socket_time(sock, calls) for _ in range(max(3, runs))]
    return {"times": times, "cpu_times": cpu_times, "identical": digest == want, "sends": sends,
            "recvs": recvs, "real_servers": rec.meta["real_servers"],
            "services": rec.meta["services"], "meta": rec.meta, "socket_times": socket_times}


class _Logged:
    """A ReplaySocket that notes each request and how many receives it had."""

    def __init__(self, sock: ReplaySocket):
        self.sock = sock
        self.calls: list[list] = []

    def send(self, buf) -> int:
        self.calls.append([bytes(buf), 0])
        return self.sock.send(buf)

    def recv_into(self, buf, nbytes=0, flags=0) -> int:
        self.calls[-1][1] += 1
        return self.sock.recv_into(buf, nbytes, flags)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def _socket_calls(rec: Recording, sock: ReplaySocket, cmd: str, sink) -> list:
    """The requests of one pass (exact bytes) and the receives of each."""
    logged = _Logged(sock)
    replay_once(rec, logged, cmd, sink)
    return logged.calls


def _socket_time(sock: ReplaySocket, calls: list) -> float:
    """What the replay socket itself costs in one pass: the same sends and
    receives with nothing else, less the same loop over no-op calls (the
    loop is the measurement's, not the socket's).  The model takes this out
    of the pass and adds the native system calls instead: the socket stands
    in for the kernel, and its Python is no part of ipvsctl's work."""
    buf = bytearray(1 << 20)
    n = len(buf)
    noop = lambda *a: 0  # noqa: E731

    def loop(send, recv_into):
        t0 = time.perf_counter()
        for req, recvs in calls:
            send(req)
            for _ in range(recvs):
                recv_into(buf, n, 0)
        return time.perf_counter() - t0

    gc.disable()
    try:
        real = loop(sock.send, sock.recv_into)
        empty = loop(noop, noop)
    finally:
        gc.enable()
    return max(0.0, real - empty)


def main(argv: list[str]) -> int:
    mode = argv[0]
    if mode == "restore":
        res = cmd_restore(argv[1], argv[2], int(argv[3]))
    elif mode == "dryrun":
        res = cmd_restore(argv[1], argv[2], int(argv[3]), once=dryrun_once)
    elif mode == "replay":
        res = cmd_replay(argv[1], argv[2], int(argv[3]))
    else:
        raise SystemExit(f"inproc.py: unknown mode {mode}")
    import ipvsctl
    res["ipvsctl_from"] = str(Path(ipvsctl.__file__).parent)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
