"""The least Python a listing can cost: a lower bound for issue 15's
"1 us per listed real server", measured rather than argued.

    .venv/bin/python benchmarks/native/floor.py [FIXTURE] [--rounds N]

On a recorded table of small services (default: the 110k one, 10,000
services of 10 real servers, each dump one datagram and a DONE), it times
two parts that any listing in Python must pay, each done more cheaply than
a correct listing can:

* "transport + struct": only the real-server requests (taken from one pass
  of ipvsctl), their datagrams, and one struct over each datagram, the
  attributes' offsets learned once from the first entry and trusted for
  every other: no service list, no checks, no model;
* "render": ipvsctl's own drawing of the table, already decoded and sorted
  (``render.text.table_text``; a one-``%``-per-line skeleton drew slower).

Their sum is the floor; "whole" is ipvsctl's whole -Ln pass for scale.
Each figure is CPU time (a loaded machine stretches wall time, not CPU
time) per real server, less the replay socket's own time (as the native
model counts it, inproc.py), the minimum of rounds that alternate the
parts so that the machine's state moves them alike.
"""

from __future__ import annotations

import argparse
import gc
import struct
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(1, str(HERE.parent))

from native.inproc import _socket_calls  # noqa: E402
from native.replay import Recording, ReplaySocket  # noqa: E402

IPVS_CMD_GET_DEST = 8
#: IPVS_DEST_ATTR_*: the attributes a -Ln line shows, and their formats.
SHOWN = {1: "4s12x", 2: "H", 3: "I", 4: "I", 7: "I", 8: "I"}  # addr, port, fwd, weight, active, inactive
FORWARD = {0: "Masq", 1: "Local", 2: "Tunnel", 3: "Route"}
HEADERS = 16 + 4 + 4  # nlmsghdr, genlmsghdr, the nested IPVS_CMD_ATTR_DEST


def entry_struct(datagram) -> struct.Struct:
    """One struct for a whole entry, fields at the offsets of the first."""
    length = struct.unpack_from("=I", datagram, 0)[0]
    offsets, off = {}, HEADERS
    while off < length:
        alen, atype = struct.unpack_from("=HH", datagram, off)
        offsets[atype] = off + 4
        off += (alen + 3) & ~3
    spec, pos = "=", 0
    for off, atype in sorted((offsets[a], a) for a in SHOWN):
        spec += (f"{off - pos}x" if off > pos else "") + SHOWN[atype]
        pos = off + struct.calcsize("=" + SHOWN[atype])
    return struct.Struct(spec + f"{((length + 3) & ~3) - pos}x")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fixture", nargs="?", default=str(HERE / "data" / "table-110k.replay.xz"))
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)

    rec = Recording.load(args.fixture)
    sock = ReplaySocket(rec)
    with open("/dev/null", "w") as sink:
        every_call = [(bytes(req), n) for req, n in _socket_calls(rec, sock, "-Ln", sink)]
    calls = [(req, n) for req, n in every_call if req[16] == IPVS_CMD_GET_DEST]
    if any(n != 2 for _req, n in calls):
        raise SystemExit(f"floor.py: {Path(args.fixture).name} has real-server dumps of more than "
                         "one datagram; the floor is measured on tables of small services")
    buf, done = bytearray(1 << 20), bytearray(1 << 16)
    view = memoryview(buf)
    sock.send(calls[0][0])
    sock.recv_into(buf)
    sock.recv_into(done)
    entry = entry_struct(buf)

    def transport_and_struct():
        send, recv = sock.send, sock.recv_into
        for req, _n in calls:
            send(req)
            n = recv(buf)
            recv(done)
            list(entry.iter_unpack(view[:n]))

    from ipvsctl.grammar import parse
    from ipvsctl.netlink.backend import NetlinkBackend
    from ipvsctl.netlink.transport import Transport
    from ipvsctl.ops import execute
    from ipvsctl.order import sort_services
    from ipvsctl.render import text

    def backend():
        return NetlinkBackend(transport=Transport(sock=sock, family=rec.family))

    fmt = parse(["-Ln"]).fmt
    table = sort_services(backend().table(counters=False), service_of=lambda e: e[0])

    def render():
        list(text.table_text(table, fmt))

    def whole():
        be = backend()
        be.info()
        for _piece in execute(parse(["-Ln"]), be).out:
            pass

    def replay_socket(which):
        def loop():
            send, recv = sock.send, sock.recv_into
            for req, n in which:
                send(req)
                for _ in range(n):
                    recv(buf)
        return loop

    servers = rec.meta["real_servers"]
    parts = {"transport + struct": transport_and_struct, "render": render, "whole": whole,
             "socket (dumps)": replay_socket(calls), "socket (whole)": replay_socket(every_call)}
    best = dict.fromkeys(parts, float("inf"))
    for _ in range(args.rounds):
        for name, fn in parts.items():
            gc.collect()
            gc.disable()
            try:
                t0 = time.process_time()
                fn()
                best[name] = min(best[name], time.process_time() - t0)
            finally:
                gc.enable()
    us = {name: t / servers * 1e6 for name, t in best.items()}
    print(f"{Path(args.fixture).name}: {len(calls)} real-server dumps, {servers} real servers; "
          f"CPU us per real server, the replay socket's own time ({us['socket (dumps)']:.2f}, "
          f"whole pass {us['socket (whole)']:.2f}) taken out, minimum of {args.rounds} rounds")
    rows = {
        "transport + struct": us["transport + struct"] - us["socket (dumps)"],
        "render": us["render"],
    }
    rows["floor (transport + struct + render)"] = sum(rows.values())
    rows["ipvsctl -Ln, whole pass"] = us["whole"] - us["socket (whole)"]
    for name, value in rows.items():
        print(f"  {name:36s} {value:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
