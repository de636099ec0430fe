"""Properties of the ipvsadm surface (cli.run_compat and the -R stream):
whatever the words, ipvsctl answers with an exit status and, on failure, a
message; never a traceback.  A fake backend stands for the kernel
(support.fakes) and no name is looked up.

Inputs that once failed are kept as @example.
"""

from __future__ import annotations

import io

from hypothesis import example, given
from hypothesis import strategies as st

from support.fakes import FakeBackend, offline

from ipvsctl.cli import run_compat

# The words of ipvsadm lines, right and wrong, with which random words mix.
WORDS = [
    "-A", "-E", "-D", "-C", "-R", "-S", "-a", "-e", "-d", "-L", "-l", "-Z", "-n", "-c", "-h", "-v", "-V",
    "-Ln", "-Lnc", "-Sn", "-AL", "-lt", "-Lnf", "-6", "-o", "-i", "-m", "-g", "-X",
    "--add-service", "--list", "--save", "--set", "--start-daemon", "--stop-daemon", "--zero", "--clear",
    "--restore", "--help", "--version",
    "-t", "-u", "-f", "-s", "-p", "-M", "-r", "-w", "-x", "-y", "-b", "--sctp-service",
    "--tcp-service=10.0.0.1:80", "--fwmark-service", "--scheduler", "--persistent", "--netmask", "--pe",
    "--weight", "--u-threshold", "--l-threshold", "--ops", "--sched-flags", "--ipv6",
    "--stats", "--rate", "--exact", "--thresholds", "--persistent-conn", "--nosort", "--sort",
    "--timeout", "--daemon", "--tun-info", "--numeric", "--connection", "--json", "--netns", "--netns=x",
    "--tun-type", "--tun-port", "--tun-csum", "--tun-nocsum", "--tun-remcsum",
    "--mcast-interface", "--syncid", "--mcast-group", "--mcast-port", "--mcast-ttl", "--sync-maxlen",
    "master", "backup", "gue", "gre", "ipip", "sip", "rr", "wlc", "sh", "mh", "sh-port", "mh-fallback,mh-port",
    "flag-1,flag-2", ",", "",
    "10.0.0.1:80", "10.0.0.2", "0.0.0.0:0", "[2001:db8::1]:80", "[::]:0", "2001:db8::1", "[1.2.3.4]:5",
    "1.2.3.4:http", "1.2.3.4:99999", "255.255.255.0", "64", "0", "1", "-1", "80", "65535", "65536",
    "2147483648", "4294967295", "4294967296", "0x10", " 7", "300s", "239.1.2.3", "ff02::1", "--", "-",
]

argvs = st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=12)), max_size=9)


def _run(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with offline():
        status = run_compat(list(argv), io.StringIO(stdin), out, err, prog="ipvsadm")
    return status, out.getvalue(), err.getvalue()


@given(argvs)
@example(["-A", "-t", "10.0.0.1:80", "-b", ","])
@example(["-L", "--netns"])
@example(["-R", "-n"])
@example(["-a", "-f", "1", "-r", "[::1]:80", "-i", "--tun-type", "gue", "--tun-port", "1"])
def test_any_argv_gives_a_status_and_a_message_never_a_traceback(argv):
    status, out, err = _run(argv)
    assert isinstance(status, int) and 0 <= status <= 255
    if status not in (0, 1):
        assert err.strip(), f"exit {status} without a word on stderr"


# -R lines: ipvsadm command lines as a rule file holds them, with the
# separators a file may hold.
lines = st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=10)), max_size=9).map(" ".join) | st.text(max_size=60)


@given(st.lists(lines, max_size=6))
@example(["-A -t 10.0.0.1:80\t-s rr\r", "# a comment", "", "ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2 -m"])
@example(["-A -t 10.0.0.1:80 -s rr -b ,"])
@example(["\0"])
def test_any_restore_stream_gives_a_status_never_a_traceback(stream):
    status, out, err = _run(["-R"], "\n".join(stream))
    assert isinstance(status, int) and 0 <= status <= 255
    if status:
        assert err.strip()


@given(st.lists(lines, max_size=6))
def test_a_restore_that_fails_to_parse_changes_nothing(stream):
    backends = []

    def factory():
        backends.append(FakeBackend())
        return backends[-1]

    out, err = io.StringIO(), io.StringIO()
    with offline(factory):
        status = run_compat(["-R"], io.StringIO("\n".join(stream)), out, err)
    if status in (2,) or "nothing was applied" in err.getvalue():
        assert all(not b.applied for b in backends)
