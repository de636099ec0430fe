"""``ipvsctl watch`` and its signals (issue 13, item 3): Ctrl-C is its
normal end, SIGTERM ends it the same way, and either leaves the terminal
as it was (the cursor shown again), without a message."""

from __future__ import annotations

import os
import signal
import sys

import pytest

WATCH_CHILD = r"""
import os, sys
sys.path[:0] = [os.environ["T_TESTS"], os.environ["T_ROOT"]]
from support.fake_ipvs import MemoryIPVS
from ipvsctl import cli, model as m, session

key = m.ServiceKey(m.AF_INET, m.IPPROTO_TCP, "192.0.2.1", 80)
k = MemoryIPVS([(m.Service(key, "rr"), [m.Destination(m.AF_INET, "198.51.100.1", 80, m.FWD_MASQ, 1)])])
k.info = lambda: m.Info(0x010201, 4096)
session.open_backend = lambda netns=None: k
sys.argv[0] = "ipvsctl"
cli.main(["watch", "--interval", "0.2"])
"""


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 0), (signal.SIGTERM, 143)])
def test_watch_on_a_terminal_ends_quietly_and_shows_the_cursor_again(tmp_path, signum, status):
    """Through a pseudo-terminal, as a user sees it: Ctrl-C is the normal
    end (0), SIGTERM ends it the same way with 143; no message either way."""
    import fcntl
    import pty
    import struct
    import subprocess
    import termios
    import time
    from pathlib import Path

    unit = Path(__file__).resolve().parent
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = dict(os.environ, T_TESTS=str(unit.parent), T_ROOT=str(unit.parent.parent))
    proc = subprocess.Popen([sys.executable, "-c", WATCH_CHILD], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30
    while seen.count(b"busiest first") < 2:  # two frames drawn: it is in its loop
        assert time.monotonic() < deadline, seen
        seen += os.read(master, 65536)
    proc.send_signal(signum)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == status
    try:
        while True:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            seen += chunk
    except OSError:  # EIO: the other end is closed
        pass
    os.close(master)
    assert err == ""
    assert seen.startswith(b"\x1b[?25l") and seen.endswith(b"\x1b[?25h")  # hidden, shown again
