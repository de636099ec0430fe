"""ipvsctl's own subcommands as a new user types them, in a real kernel
(issue 10): options before the subcommand, ipvsadm habits, hints that name
the mistake, narrow screens.

These spawn the installed command (`python -m ipvsctl` inside the
namespace, or `--netns`): the entry point's routing is what is under test.
"""

from __future__ import annotations

import json
import sys

import pytest
from nsutil import NetNS, _ip_batch, delete_many, run_ipvsadm, run_ipvsctl, unique_name


def _ipvsctl(*args: str, input: str | None = None, ns: NetNS | None = None):
    """`python -m ipvsctl ARGS`, in ``ns`` (or where this process is)."""
    if ns is not None:
        return run_ipvsctl(ns, *args, input=input)
    import subprocess

    return subprocess.run([sys.executable, "-m", "ipvsctl", *args], input=input,
                          capture_output=True, text=True, timeout=60)


def _table(ns: NetNS) -> None:
    r = run_ipvsadm(ns, "-R", input=(
        "-A -t 198.18.0.10:80 -s wlc\n"
        "-a -t 198.18.0.10:80 -r 198.18.1.2:80 -m -w 3 -x 500 -y 400\n"
        "-a -t 198.18.0.10:80 -r 198.18.2.2:80 -m -w 0\n"
        "-A -t [fd00:18::10]:80 -s rr\n"
        "-a -t [fd00:18::10]:80 -r [fd00:18:1::2]:8080 -m\n"
        "-A -f 200 -6 -s sh\n"
        "-A -u 198.18.0.10:53 -s rr\n"))
    assert r.returncode == 0, r.stderr


def test_netns_and_json_before_the_subcommand(netns, tmp_path):
    _table(netns)
    for before in (["--netns", netns.name], [f"--netns={netns.name}"]):
        r = _ipvsctl(*before, "list", "--width", "100")
        assert (r.returncode, r.stderr) == (0, ""), r.stderr
        assert r.stdout.startswith("TCP 198.18.0.10:80  wlc")
        r = _ipvsctl(*before, "watch", "--once")
        assert r.returncode == 0 and "198.18.1.2:80" in r.stdout, r.stderr
    r = _ipvsctl("--json", "--netns", netns.name, "list")
    assert r.returncode == 0 and len(json.loads(r.stdout)["services"]) == 4
    rules = tmp_path / "rules"
    rules.write_text("-A -t 198.18.0.99:80\n")
    r = _ipvsctl("--netns", netns.name, "restore", str(rules))
    assert (r.returncode, r.stderr) == (0, "")
    assert "-A -t 198.18.0.99:80 -s wlc" in run_ipvsadm(netns, "-Sn").stdout
    # the same document read back, with --json before the subcommand
    doc = tmp_path / "doc.json"
    doc.write_text(_ipvsctl("--netns", netns.name, "-Ln", "--json").stdout)
    r = _ipvsctl("--json", "--netns", netns.name, "restore", "--dry-run", str(doc))
    assert r.returncode == 0 and "restore: valid: 5 services, 3 real servers" in r.stdout


EMPTY_NETNS_LINES = [
    ["--netns=", "-C"], ["-C", "--netns", ""], ["--netns", "", "-Ln"], ["-Lnc", "--netns="],
    ["--netns=", "-R"], ["--netns", "", "list"], ["list", "--netns="], ["--netns=", "watch", "--once"],
    ["restore", "--flush", "--netns=", "RULES"], ["--netns", "", "apply", "--prune", "RULES"],
    ["diff", "--netns", "", "RULES"], ["drain", "-t", "198.18.0.10:80", "-r", "198.18.1.2", "--netns="],
    ["conns", "--netns="], ["metrics", "--netns", ""], ["doctor", "--netns="],
]


@pytest.mark.parametrize("line", EMPTY_NETNS_LINES, ids=" ".join)
def test_an_empty_netns_name_is_no_namespace_not_this_one(netns, tmp_path, line):
    """`--netns=` (a variable that came out empty) named no namespace but
    worked on the table of the namespace ipvsctl runs in (`ipvsctl
    --netns= -C` cleared it): it is refused, as a name that does not
    exist is, and the table stays."""
    _table(netns)
    before = run_ipvsadm(netns, "-Sn").stdout
    rules = tmp_path / "rules"
    rules.write_text("-A -t 198.18.0.99:80\n")
    args = [str(rules) if a == "RULES" else a for a in line]
    r = _ipvsctl(*args, ns=netns, input="-C\n")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "network namespace '' not found" in r.stderr, r.stderr
    assert run_ipvsadm(netns, "-Sn").stdout == before


@pytest.mark.parametrize("path", ["/tmp", "/proc/self/ns/mnt"])
def test_a_netns_file_that_is_no_network_namespace_is_named(netns, path):
    r = _ipvsctl("--netns", path, "-Ln", ns=netns)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (f"ipvsctl: cannot enter network namespace '{path}': Invalid argument "
                        f"({path} is no network namespace file)\n")
    r = _ipvsctl("list", "--netns", path, ns=netns)
    assert r.returncode == 2 and f"({path} is no network namespace file)" in r.stderr, r.stderr


@pytest.mark.parametrize("command", [["apply"], ["apply", "--prune", "-"], ["diff"]])
def test_standard_input_that_is_not_utf8_is_named_as_a_file_is(netns, tmp_path, command):
    """In the UTF-8 locale sys.stdin escapes bytes that are not UTF-8: they
    came out as "line 1: not an ipvsadm command line" (exit 255), where
    the same bytes in a file are "not UTF-8 text" (exit 2)."""
    _table(netns)
    before = run_ipvsadm(netns, "-Sn").stdout
    garbage = "-A -t 198.18.0.10:80 -s rr\n\udcff\udcfe not text\n"  # bytes ff fe, as run_ipvsctl writes them
    r = _ipvsctl(*command, ns=netns, input=garbage)
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr == "ipvsctl: standard input: not UTF-8 text (invalid start byte at byte 27)\n"
    assert run_ipvsadm(netns, "-Sn").stdout == before


def test_ipvsadm_habits_on_list_and_watch(netns):
    _table(netns)
    r = _ipvsctl("list", "-n", "--width", "100", ns=netns)
    assert r.returncode == 0 and r.stdout.startswith("TCP 198.18.0.10:80"), r.stderr
    r = _ipvsctl("watch", "-n", "--once", ns=netns)
    assert r.returncode == 0, r.stderr
    r = _ipvsctl("watch", "-n", "2", ns=netns)
    assert r.returncode == 2 and "--interval SECONDS" in r.stderr and "--numeric" in r.stderr
    r = _ipvsctl("watch", "-i", "2", ns=netns)
    assert r.returncode == 2 and "ipip" in r.stderr and "--interval SECONDS" in r.stderr
    # conns is ipvsadm -Lnc's view: -n is taken there too (it was "No such option")
    for args in (["-n"], ["-n", "--summary"], ["--numeric", "--json"]):
        r = _ipvsctl("conns", *args, ns=netns)
        plain = _ipvsctl("conns", *args[1:], ns=netns)
        assert (r.returncode, r.stderr, r.stdout) == (0, "", plain.stdout), (args, r.stderr)


def test_a_missing_service_names_the_likely_mistake(netns):
    _table(netns)
    r = _ipvsctl("list", "-t", "fd00:18::10:80", ns=netns)
    assert r.returncode == 1
    assert r.stderr == ("ipvsctl: No such service (-t [fd00:18::10:80]:0); did you mean "
                        "-t [fd00:18::10]:80? an IPv6 address with a port goes in brackets, "
                        "[ADDRESS]:PORT; without them fd00:18::10:80 is all address, with port 0\n")
    r = _ipvsctl("list", "-f", "200", ns=netns)
    assert r.returncode == 1
    assert r.stderr == ("ipvsctl: No such service (-f 200); there is an IPv6 fwmark service 200: "
                        "add -6 after -f (-f 200 -6)\n")
    r = _ipvsctl("list", "-t", "198.18.0.10:53", ns=netns)
    assert r.returncode == 1 and r.stderr.endswith(
        "there is a UDP service there: -u 198.18.0.10:53\n")
    # ipvsadm's surface keeps ipvsadm's words
    for line in (["-Ln", "-t", "fd00:18::10:80"], ["-Ln", "-f", "200"]):
        want, got = run_ipvsadm(netns, *line), _ipvsctl(*line, ns=netns)
        assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)
        assert got.stderr == "No such service\n"


def test_narrow_widths_never_split_an_address_or_a_number(netns):
    _table(netns)
    for width in ("40", "50", "60", "70"):
        for extra in ([], ["--stats"], ["--rate"]):
            r = _ipvsctl("list", "--width", width, *extra, ns=netns)
            assert r.returncode == 0, r.stderr
            lines = r.stdout.splitlines()
            assert max(map(len, lines)) <= int(width)
            words = r.stdout.split()
            for whole in ("198.18.1.2:80", "198.18.2.2:80", "[fd00:18:1::2]:8080"):
                assert whole in words or any(w.endswith("…") and whole.startswith(w[:-1])
                                             for w in words), (width, extra, whole, r.stdout)
            if not extra and "Thresh" in r.stdout.split("(left out")[0]:
                assert "500/400" in words, r.stdout
            for line in lines:  # no line starts with the tail of a split value
                assert not line.lstrip()[:1] in ("0", ":", "]") or line.startswith("0"), line


def test_restore_without_json_names_a_json_document(netns, tmp_path):
    _table(netns)
    doc = tmp_path / "table.json"
    doc.write_text(_ipvsctl("-Ln", "--json", ns=netns).stdout)
    r = _ipvsctl("restore", str(doc), ns=netns)
    assert r.returncode == 2
    assert r.stderr == (f"ipvsctl: restore: {doc} holds a JSON document, not ipvsadm lines: use "
                        "`restore --json` (nothing was changed)\n")


@pytest.fixture
def fresh_netns():
    """A namespace as `ip netns add` leaves it: loopback never brought up."""
    ns = NetNS(unique_name("lo"))
    _ip_batch([f"netns add {ns.name}"])
    yield ns
    delete_many([ns])


def test_loopback_down_is_named(fresh_netns):
    ns = fresh_netns
    line = ["-a", "-t", "198.18.0.10:80", "-r", "198.18.1.2:80", "-m"]
    run_ipvsadm(ns, "-A", "-t", "198.18.0.10:80")
    want = run_ipvsadm(ns, *line)
    got = _ipvsctl(*line, ns=ns)
    assert want.returncode == got.returncode == 255, (want, got)
    # ipvsadm's own line first, then what it means
    assert got.stderr == want.stderr + (
        "the loopback interface (lo) is down in this network namespace, and then the kernel "
        "refuses IPv4 real servers: bring it up with `ip link set lo up`\n")
    assert got.stdout == want.stdout == ""
    r = _ipvsctl("restore", input=" ".join(line) + "\n", ns=ns)
    assert r.returncode == 255 and "line 1: the loopback interface (lo) is down" in r.stderr
    # a refusal for another reason says nothing of loopback
    ns.set_link_up("lo")
    got = _ipvsctl("-a", "-t", "198.18.0.10:80", "-r", "224.0.0.1", "-m", ns=ns)
    want = run_ipvsadm(ns, "-a", "-t", "198.18.0.10:80", "-r", "224.0.0.1", "-m")
    assert (got.returncode, got.stderr) == (want.returncode, want.stderr) == (255, want.stderr)
    assert (_ipvsctl(*line, ns=ns).returncode) == 0


def test_typos_and_the_wrong_kind_of_input_are_named(netns, tmp_path):
    _table(netns)
    # a misspelt subcommand: ipvsadm's answer, then what was meant
    want = run_ipvsadm(netns, "lsit")
    got = _ipvsctl("lsit", ns=netns)
    assert got.returncode == want.returncode == 255
    assert got.stderr == want.stderr.replace("ipvsadm", "ipvsctl") + (
        "ipvsctl: `lsit' is no subcommand; did you mean `ipvsctl list'?\n")
    # a word ipvsadm refuses that is no near miss: ipvsadm's answer alone
    got = _ipvsctl("foo", ns=netns)
    assert got.stderr == want.stderr.replace("ipvsadm", "ipvsctl")
    # -R of a JSON document, and restore --json of -R lines
    doc = _ipvsctl("-Ln", "--json", ns=netns).stdout
    got = _ipvsctl("-R", input=doc, ns=netns)
    assert got.returncode == 255 and got.stderr.endswith(
        "restore: the input is a JSON document: `ipvsctl restore --json` reads it\n")
    rules = run_ipvsadm(netns, "-Sn").stdout
    got = _ipvsctl("restore", "--json", input=rules, ns=netns)
    assert got.returncode == 2 and got.stderr == (
        "ipvsctl: restore: the input holds ipvsadm -R lines, not a JSON document: leave out "
        "--json (nothing was changed)\n")
    # a service named without its port
    got = _ipvsctl("list", "-t", "198.18.0.10", ns=netns)
    assert got.returncode == 1 and got.stderr.endswith(
        "without a port it is port 0; did you mean -t 198.18.0.10:80?\n")
