"""Where ipvsctl's native time goes: restore per line, listing per real server.

    .venv/bin/python benchmarks/native/timeprofile.py [restore|list|sn|big|mixed] [--top N]

(mixed: -Ln of the 110k table with every third service IPv6.)

Runs natively, without a kernel (replay.py's sockets), with the ipvsctl of
the interpreter that runs it.  Prints the stages' wall times (each the
median of 3 runs, no profiler) and then cProfile's functions by own time
(one profiled run; the profiler inflates call-heavy code, so read its
shares, not its absolute times).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(1, str(HERE.parent))

from native.replay import AckSocket, Recording, ReplaySocket  # noqa: E402


def timed(fn, runs=3):
    ts = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def restore_stages(text: str):
    from ipvsctl.grammar import split_restore_line
    from ipvsctl.netlink.backend import NetlinkBackend
    from ipvsctl.netlink.encode import encode_request
    from ipvsctl.netlink.transport import Transport
    from ipvsctl.restore import apply, lines_of, plan

    raw = text.split("\n")
    n = sum(1 for l in raw if l.strip())
    reqs = plan(raw).batch.requests  # the default Batch: a list of Request values
    msgs = [encode_request(0x20, r) for r in reqs]

    def whole():  # as -R does it: the stream read in chunks, each request encoded as it is checked
        backend = NetlinkBackend(transport=Transport(sock=AckSocket(), family=0x20))
        return apply(plan(lines_of([text]), backend.batch()), backend)

    stages = {
        "split lines (str.split of each line)": lambda: [split_restore_line(l) for l in raw],
        "plan: split + parse + validate + Request": lambda: plan(raw),
        "encode: Request -> netlink bytes": lambda: [encode_request(0x20, r) for r in reqs],
        "batch: windows over AckSocket (transport only)":
            lambda: Transport(sock=AckSocket(), family=0x20).batch(msgs),
        "whole: plan + apply (as -R, no kernel)": whole,
    }
    print(f"restore of {n} lines: stages (median of 3, us per line)")
    for name, fn in stages.items():
        print(f"  {timed(fn) / n * 1e6:7.2f}  {name}")
    return stages["whole: plan + apply (as -R, no kernel)"], n


def list_stages(fixture: Path, cmd: str):
    from ipvsctl.grammar import parse
    from ipvsctl.netlink.backend import NetlinkBackend
    from ipvsctl.netlink.transport import Transport
    from ipvsctl.ops import execute
    from ipvsctl.order import sort_services
    from ipvsctl.render import text

    rec = Recording.load(fixture)
    sock = ReplaySocket(rec)
    fmt = parse([cmd]).fmt
    servers = rec.meta["real_servers"]

    def backend():
        return NetlinkBackend(transport=Transport(sock=sock, family=rec.family))

    def whole():
        be = backend()
        be.info()
        out = execute(parse([cmd]), be).out
        for piece in ([out] if isinstance(out, str) else out):
            pass

    whole()   # warm-up: live sequence numbers
    table = backend().table(counters=False)
    stages = {
        "transport only: requests + datagrams (no decoding)": lambda: _drain(backend(), rec),
        "table(): dumps + decode (services, rows, re-check)": lambda: backend().table(counters=False),
        "sort services": lambda: sort_services(table, service_of=lambda e: e[0]),
        "render text (table already decoded)":
            lambda: list(text.table_text(table, fmt)),
        "whole: info + table + sort + render": whole,
    }
    print(f"{cmd} of {fixture.name}: {rec.meta['services']} services, {servers} real servers; "
          "stages (median of 3, us per real server)")
    for name, fn in stages.items():
        print(f"  {timed(fn) / servers * 1e6:7.3f}  {name}")
    return whole, servers


def _drain(backend, rec):
    from ipvsctl.netlink import decode, encode

    t = backend._dumps
    fam = rec.family
    svcs = list(t.dump(encode.encode_dump_services(fam)))
    keys = [decode.decode_service(p).key for p in svcs]
    for k in keys:
        for _ in t.dump_runs(encode.encode_dump_dests(fam, k)):
            pass


def profile(fn, units: int, top: int) -> None:
    pr = cProfile.Profile()
    pr.enable()
    fn()
    pr.disable()
    s = io.StringIO()
    st = pstats.Stats(pr, stream=s)
    total = st.total_tt
    print(f"cProfile: {total / units * 1e6:.2f} us per unit under the profiler; "
          f"top {top} by own time:")
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    for (file, line, func), (cc, nc, tt, ct, _callers) in rows:
        where = f"{Path(file).name}:{line}" if line else file
        print(f"  {tt / total * 100:5.1f}%  {tt / units * 1e6:6.2f} us/unit  {nc:>9} calls  "
              f"{func} ({where})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", nargs="?", default="restore", choices=("restore", "list", "sn", "big", "mixed"))
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args(argv)
    if a.what == "restore":
        sys.path.insert(0, str(HERE.parent))
        import harness as bench

        text = "".join(l + "\n" for l in bench.restore_lines(10_000, 10))
        fn, units = restore_stages(text)
    else:
        fixture = HERE / "data" / {"big": "big-20k", "mixed": "table-mixed-110k"}.get(a.what, "table-110k")
        fixture = fixture.with_name(fixture.name + ".replay.xz")
        fn, units = list_stages(fixture, "-Sn" if a.what == "sn" else "-Ln")
    profile(fn, units, a.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
