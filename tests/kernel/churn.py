"""A process that keeps changing the IPVS table of the namespace it runs in,
for the torn-dump tests (test_torn_dumps.py).

    python churn.py dest ADDR:PORT REAL   add REAL:PORT to the TCP service, delete it, again
    python churn.py service BASE COUNT    add and delete TCP services BASE+i:80, i cycling

It runs until killed, as fast as it can (one request per netlink round trip),
and prints the number of changes made to stdout when it gets SIGTERM.
"""

from __future__ import annotations

import signal
import sys

from ipvsctl.backend import OP_ADD_DEST, OP_ADD_SERVICE, OP_DEL_DEST, OP_DEL_SERVICE, Request
from ipvsctl.model import AF_INET, IPPROTO_TCP, Destination, Service, ServiceKey
from ipvsctl.netlink.backend import NetlinkBackend


def main(argv: list[str]) -> None:
    kind = argv[0]
    changes = 0

    def stop(*_):
        print(changes, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    backend = NetlinkBackend()
    if kind == "dest":
        vip, port = argv[1].rsplit(":", 1)
        svc = ServiceKey(AF_INET, IPPROTO_TCP, vip, int(port))
        dest = Destination(AF_INET, argv[2], int(port))
        while True:
            backend.apply(Request(OP_ADD_DEST, svc, dest))
            backend.apply(Request(OP_DEL_DEST, svc, dest))
            changes += 2
    elif kind == "service":
        a, b, c, d = (int(x) for x in argv[1].split("."))
        base = a << 24 | b << 16 | c << 8 | d
        count = int(argv[2])
        i = 0
        while True:
            n = base + i % count
            key = ServiceKey(AF_INET, IPPROTO_TCP, f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 80)
            backend.apply(Request(OP_ADD_SERVICE, Service(key, "rr")))
            backend.apply(Request(OP_DEL_SERVICE, key))
            changes += 2
            i += 7  # a different hash bucket each time
    else:
        raise SystemExit(f"unknown kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
