"""Output that cannot be written, on every command of both surfaces:
coreutils' conventions (ipvsctl.stdio).

Each command runs as the real program does (``cli.main`` in a child
process, its standard streams the shell's), over an in-memory kernel with a
table big enough that a listing outgrows a pipe's buffer.  Then:

- ``> /dev/full``: ``ipvsctl: write error: No space left on device``, exit 1
  (or the command's own non-zero status);
- ``>&-``: the same with ``Bad file descriptor``;
- ``| head -1``: ipvsctl dies of SIGPIPE, silently, as ipvsadm does (141);
- ``2>&-``, ``2>/dev/full``, ``<&-``: the command's own status, or a clear
  message naming standard input;
- never a traceback; a command that changes the table finishes the change
  whatever happens to its output.

tests/kernel/test_write_errors.py runs the same against the real kernel.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent
ROOT = UNIT.parent.parent

SERVICES, DESTS = 1500, 10  # -Ln is ~1 MB: far more than a pipe holds

CHILD = r"""
import os, sys
sys.path[:0] = [os.environ["T_TESTS"], os.environ["T_ROOT"]]
from support.fake_ipvs import MemoryIPVS
import errno
from ipvsctl import cli, model as m, schedulers, session
from ipvsctl.backend import KernelError

S, D = int(os.environ["T_SERVICES"]), int(os.environ["T_DESTS"])


def table():
    out = []
    for i in range(S):
        key = m.ServiceKey(m.AF_INET, m.IPPROTO_TCP, f"10.{i // 250}.{i % 250}.1", 80)
        dests = [m.Destination(m.AF_INET, f"10.100.{j}.{i % 250 + 1}", 80, m.FWD_MASQ, 1)
                 for j in range(D)]
        out.append((m.Service(key, "rr"), dests))
    return out


# MemoryIPVS, with the reads the listings make and a note of how far the
# changes got (in a file: the process may die of SIGPIPE).
class Kernel:
    def __init__(self, entries):
        self.k = MemoryIPVS(entries)

    def info(self):
        return m.Info(0x010201, 4096)

    def table(self, counters=True):
        return self.k.table(counters)

    def services(self):
        return list(self.k.services.values())

    def service(self, key):
        if key not in self.k.services:
            raise KernelError(errno.ESRCH, "get_service")
        return self.k.services[key]

    def destinations(self, key):
        return self.k.destinations(key)

    def timeouts(self):
        return m.Timeouts(900, 120, 300)

    def daemons(self):
        return [m.Daemon(m.DAEMON_MASTER, "eth0", 1)]

    def read_proc_net(self, name):
        head = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
        return head + "TCP C0A80001 1F90 C0000201 0050 C6336401 0050 ESTABLISHED 899\n" * 20000

    def _note(self):
        with open(os.environ["T_SENT"], "w") as f:
            f.write(str(len(self.k.sent)))

    def apply_many(self, requests):
        try:
            return self.k.apply_many(requests)
        finally:
            self._note()

    def apply(self, req):
        try:
            self.k.apply(req)
        finally:
            self._note()

    def close(self):
        pass


k = Kernel(table())
session.open_backend = lambda netns=None: k
from ipvsctl import conns  # `conns` reads the connection file itself

conns.IP_VS_CONN_FILE = os.environ["T_CONN"]
schedulers.check = lambda kind, name, probe: (schedulers.AVAILABLE, "loaded")
sys.argv[0] = "ipvsctl"
cli.main()
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("out")
    child = d / "child.py"
    child.write_text(CHILD)
    # A desired table that changes every entry (scheduler, weight) and adds one.
    rules = [f"-A -t 10.{i // 250}.{i % 250}.1:80 -s wrr" for i in range(SERVICES)]
    rules += [f"-a -t 10.{i // 250}.{i % 250}.1:80 -r 10.100.{j}.{i % 250 + 1}:80 -m -w 2"
              for i in range(SERVICES) for j in range(DESTS)]
    rules.append("-A -t 10.200.0.1:80 -s rr")
    (d / "desired.rules").write_text("\n".join(rules) + "\n")
    # A restore that adds services that are not there yet.
    (d / "new.rules").write_text("".join(f"-A -t 10.201.{i // 250}.{i % 250}:80 -s rr\n"
                                         for i in range(3000)) + "-Ln\n")
    (d / "ip_vs_conn").write_text(
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
        + "".join(f"TCP C0A8{i:04X} 1F90 0A000001 0050 0A640001 0050 ESTABLISHED 899\n"
                  for i in range(20000)))
    (d / "new.json").write_text('{"services":[' + ",".join(
        f'{{"family":"inet","protocol":"tcp","address":"10.202.{i // 250}.{i % 250}","port":80,'
        f'"scheduler":"rr","destinations":[]}}' for i in range(300)) + "]}")
    return d


def run(files, argv: list[str], redirect: str, stdin: str = "< /dev/null"):
    """``ipvsctl ARGV REDIRECT`` through bash (pipefail: a pipeline's status
    is ipvsctl's); returns (status, stderr, requests the kernel got)."""
    sent = files / "sent"
    sent.write_text("0")
    env = dict(os.environ, T_TESTS=str(UNIT.parent), T_ROOT=str(ROOT), T_SERVICES=str(SERVICES),
               T_DESTS=str(DESTS), T_SENT=str(sent), T_CONN=str(files / "ip_vs_conn"), IPVSCTL_LOCK_DIR=str(files / "locks"),
               COLUMNS="100")
    env.pop("PYTHONUNBUFFERED", None)  # as users run it: buffered
    words = " ".join(f"'{a}'" for a in argv)
    script = (f"set -o pipefail; cd '{files}'; '{sys.executable}' child.py {words} {stdin} "
              f"{redirect} 2> err; echo $? > status")
    subprocess.run(["bash", "-c", script], env=env, timeout=120, check=True,
                   stdout=subprocess.DEVNULL)
    err = (files / "err").read_text()
    assert "Traceback" not in err, err
    return int((files / "status").read_text()), err, int(sent.read_text())


LISTINGS = [["-Ln"], ["-Sn"], ["-L", "-n", "--stats"], ["-Ln", "--json"], ["-Lnc"],
            ["list"], ["ls", "--stats"], ["list", "--json"], ["watch", "--once"]]
SMALL = [["-L", "--timeout"], ["-L", "--daemon"], ["-h"], ["--version"], ["help"],
         ["help", "list"], ["list", "--help"], ["completion", "bash"], ["restore", "--help"]]
# issue 14's subcommands: their own statuses (doctor on this host finds problems: 1)
REPORTS = [["metrics"], ["conns"], ["conns", "--summary"], ["conns", "--json"], ["doctor"],
           ["doctor", "--json"], ["help", "metrics"]]


@pytest.mark.parametrize("argv", REPORTS, ids=" ".join)
def test_the_report_subcommands_follow_the_same_conventions(files, argv):
    status, err, _ = run(files, argv, "> /dev/null")
    assert run(files, argv, "> /dev/full")[:2] == (status or 1, err + "ipvsctl: write error: No space left on device\n")
    assert run(files, argv, ">&-")[:2] == (status or 1, err + "ipvsctl: write error: Bad file descriptor\n")
    if argv[0] in ("metrics", "conns") and argv[-1] != "--summary":  # big enough to outgrow a pipe
        assert run(files, argv, "| head -c 10 > /dev/null")[:2] == (141, "")


# (the restores print the -Ln line at the end of new.rules)
CHANGES = [(["diff", "desired.rules"], 1), (["apply", "desired.rules"], 0),
           (["restore", "new.rules"], 0), (["-R"], 0),
           (["drain", "-t", "10.0.0.1:80", "-r", "10.100.0.1:80", "--interval", "0.05"], 0)]


def _name(value):
    return " ".join(value) if isinstance(value, list) else str(value)


def _stdin(argv):
    return "< new.rules" if argv == ["-R"] else "< /dev/null"


@pytest.mark.parametrize("argv", LISTINGS + SMALL, ids=" ".join)
@pytest.mark.parametrize("redirect, reason", [("> /dev/full", "No space left on device"),
                                              (">&-", "Bad file descriptor")])
def test_a_write_error_is_one_line_and_status_1(files, argv, redirect, reason):
    status, err, _ = run(files, argv, redirect)
    assert (status, err) == (1, f"ipvsctl: write error: {reason}\n")


@pytest.mark.parametrize("argv, ok", CHANGES, ids=_name)
def test_a_change_is_finished_before_its_write_error_is_reported(files, argv, ok):
    _, _, normal = run(files, argv, "> /dev/null", _stdin(argv))
    assert normal > 0 or argv[0] == "diff"
    status, err, sent = run(files, argv, "> /dev/full", _stdin(argv))
    assert sent == normal  # every request went out, as without the error
    assert err.endswith("ipvsctl: write error: No space left on device\n"), err
    assert status == (ok or 1)


@pytest.mark.parametrize("argv", LISTINGS, ids=" ".join)
def test_a_reader_that_leaves_ends_ipvsctl_by_sigpipe_silently(files, argv):
    status, err, _ = run(files, argv, "| head -c 10 > /dev/null")
    assert (status, err) == (128 + 13, "")


@pytest.mark.parametrize("argv", [["apply", "desired.rules"], ["-R"], ["restore", "new.rules"]],
                         ids=" ".join)
def test_a_reader_that_leaves_does_not_stop_a_change(files, argv):
    _, _, normal = run(files, argv, "> /dev/null", _stdin(argv))
    status, err, sent = run(files, argv, "| head -c 10 > /dev/null", _stdin(argv))
    assert sent == normal
    assert (status, err) == (128 + 13, "")


@pytest.mark.parametrize("argv", [["-Ln"], ["list"], ["-L", "--timeout"], ["watch", "--once"]],
                         ids=" ".join)
def test_closed_or_full_standard_error_changes_nothing_when_nothing_is_said(files, argv):
    assert run(files, argv, "> /dev/null 2>&-")[:2] == (0, "")
    assert run(files, argv, "> /dev/null 2>/dev/full")[:2] == (0, "")


@pytest.mark.parametrize("argv", [["-A", "-t", "10.0.0.1:80", "-w", "x"],
                                  ["-a", "-t", "10.250.0.1:80", "-r", "10.1.1.1"],
                                  ["list", "-t", "10.250.0.1:80"], ["apply", "no-such-file"]],
                         ids=" ".join)
def test_an_error_message_that_cannot_be_written_keeps_the_status(files, argv):
    status, err, _ = run(files, argv, "> /dev/null")
    assert status and err
    assert run(files, argv, "> /dev/null 2>&-")[0] == status
    assert run(files, argv, "> /dev/null 2>/dev/full")[0] == status


@pytest.mark.parametrize("argv", [["-R"], ["restore"], ["restore", "--json"], ["diff"], ["apply"],
                                  ["restore", "-"]], ids=" ".join)
def test_a_closed_standard_input_is_named(files, argv):
    status, err, sent = run(files, argv, "> /dev/null", stdin="<&-")
    assert status == 2 and sent == 0
    assert "standard input: Bad file descriptor\n" in err, err


def test_a_closed_standard_input_does_not_matter_to_a_listing(files):
    assert run(files, ["-Ln"], "> /dev/null", stdin="<&-")[:2] == (0, "")


def test_a_metrics_server_outlives_a_client_that_leaves_mid_answer(files):
    """SIGPIPE's default action ends a listing whose reader left; it must
    not end `metrics --listen` when a scraper hangs up half-way through a
    big answer: the next scrape is answered."""
    import re
    import socket
    import time

    env = dict(os.environ, T_TESTS=str(UNIT.parent), T_ROOT=str(ROOT), T_SERVICES=str(SERVICES),
               T_DESTS=str(DESTS), T_SENT=str(files / "sent"), T_CONN=str(files / "ip_vs_conn"))
    proc = subprocess.Popen([sys.executable, str(files / "child.py"), "metrics", "--listen",
                             "127.0.0.1:0"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r":(\d+)/metrics", proc.stderr.readline()).group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            s.shutdown(socket.SHUT_WR)  # the server's end goes to CLOSE_WAIT
            got = s.recv(100)
            while b"ipvs_" not in got:  # the body has begun: the server is writing
                more = s.recv(100)
                assert more, f"the first scrape ended before its body: {got[:200]!r}"
                got += more
        # closed with the answer unread: a reset, and in CLOSE_WAIT the server's
        # next write fails with EPIPE (tcp_reset), which raises SIGPIPE
        # The answer is ~40 MB: gathered in a bytearray, not by `bytes +=`,
        # which copies all of it again for each of its ~700 chunks (9 minutes
        # under UML 6.1, where every fresh page is a trap).
        got = bytearray()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")  # answered after the one before
                while chunk := s.recv(1 << 16):
                    got += chunk
        except OSError as e:
            time.sleep(0.5)
            raise AssertionError(f"the next scrape failed ({e}); the server's status: {proc.poll()}")
        assert got.startswith(b"HTTP/1.") and b" 200 " in got.split(b"\r\n")[0], got[:200]
        assert b"ipvs_scrape_success 1" in got
        time.sleep(0.2)
        assert proc.poll() is None, f"the server died: {proc.returncode}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "Traceback" not in proc.stderr.read()


def test_a_ctrl_c_as_the_output_is_flushed_ends_by_sigint_silently():
    """The work is done and the command's own handlers are gone: a SIGINT
    now (seen in the kernel tier: a restore signalled as it finished) ends
    ipvsctl as the signal ends a program without a handler, no traceback."""
    code = (
        "import sys\n"
        "from ipvsctl import stdio\n"
        "stdio.prepare()\n"
        "sys.stdout.write('done\\n')\n"
        "def interrupted(stream):\n"
        "    raise KeyboardInterrupt\n"
        "stdio._flush = interrupted\n"
        "sys.exit(stdio.finish(0))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert (r.returncode, r.stderr) == (-signal.SIGINT, "")
