"""Output that cannot be written, against the real kernel (issue 13, item 2):
each surface as a user runs it from a shell, on a table whose listing is
far bigger than a pipe holds.

- ``> /dev/full`` and ``>&-``: ``ipvsctl: write error: <reason>``, status 1;
- ``| head -1``: ipvsctl dies of SIGPIPE, silently, as ipvsadm does (the
  shell's 141, for both tools);
- a change whose output fails is finished all the same: the table read back
  is the one the change makes;
- never a traceback.

tests/unit/test_stdio.py covers every subcommand over an in-memory
kernel; this holds the same to the real one.
"""

from __future__ import annotations

import sys

import pytest
from nsutil import run_ipvsadm

SERVICES, DESTS = 600, 10  # -Ln: 6,600 lines, ~400 KB


def _rules(services: int, weight: int = 1, scheduler: str = "rr") -> str:
    out = []
    for i in range(services):
        vip = f"10.{40 + i // 250}.{i % 250}.1:80"
        out.append(f"-A -t {vip} -s {scheduler}")
        out += [f"-a -t {vip} -r 10.90.{j}.{i % 250 + 1}:80 -m -w {weight}" for j in range(DESTS)]
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def table():
    from nsutil import NetNS, delete_many

    (ns,) = NetNS.create_many(["out"])
    r = run_ipvsadm(ns, "-R", input=_rules(SERVICES))
    assert r.returncode == 0, r.stderr
    yield ns
    delete_many([ns])


def sh(ns, command: str, tool: str = "ipvsctl", input: str | None = None):
    """``TOOL COMMAND`` through bash in ``ns`` (pipefail: a pipeline's status
    is the tool's); returns (status, stderr)."""
    exe = f"'{sys.executable}' -m ipvsctl" if tool == "ipvsctl" else "ipvsadm"
    r = ns.run(["bash", "-c", f"set -o pipefail; {exe} {command}"], input=input)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stderr


LISTINGS = ["-Ln", "-Sn", "-L -n --stats", "-Ln --json", "list", "list --json", "ls --rate",
            "watch --once"]


@pytest.mark.parametrize("command", LISTINGS)
def test_a_listing_to_a_full_disk_or_a_closed_stdout_says_write_error(table, command):
    assert sh(table, f"{command} > /dev/full") == (1, "ipvsctl: write error: No space left on device\n")
    assert sh(table, f"{command} >&-") == (1, "ipvsctl: write error: Bad file descriptor\n")


@pytest.mark.parametrize("command", ["metrics", "conns", "conns --summary", "doctor", "doctor --json"])
def test_the_report_subcommands_say_write_error_too(table, command):
    """Issue 14's subcommands: their own status when it is not 0 (doctor
    may find problems in a test namespace), else 1."""
    r = table.run(["bash", "-c", f"'{sys.executable}' -m ipvsctl {command} > /dev/null"])
    status = r.returncode or 1
    assert sh(table, f"{command} > /dev/full") == (status, r.stderr + "ipvsctl: write error: No space left on device\n")
    assert sh(table, f"{command} >&-") == (status, r.stderr + "ipvsctl: write error: Bad file descriptor\n")


@pytest.mark.parametrize("command", ["-Ln", "-Sn", "list", "-Ln --json", "watch --once", "metrics"])
def test_a_reader_that_leaves_ends_both_tools_by_sigpipe(table, command):
    head = "head -c 100" if "--json" in command else "head -1"  # the document is one line
    assert sh(table, f"{command} | {head} > /dev/null") == (141, "")
    if command.startswith("-") and "--json" not in command:  # the same through ipvsadm
        assert sh(table, f"{command} | head -1 > /dev/null", tool="ipvsadm") == (141, "")


def test_ipvsadm_ignores_what_ipvsctl_reports(table):
    """The difference docs/compat.md names, measured: ipvsadm exits 0."""
    assert sh(table, "-Ln > /dev/full", tool="ipvsadm") == (0, "")
    assert sh(table, "-Ln >&-", tool="ipvsadm") == (0, "")


def test_closed_standard_streams(table):
    assert sh(table, "-Ln > /dev/null 2>&-") == (0, "")
    assert sh(table, "-Ln > /dev/null <&-") == (0, "")
    status, err = sh(table, "-R <&-")
    assert status == 2 and "ipvsctl: standard input: Bad file descriptor\n" in err
    assert sh(table, "-R <&-", tool="ipvsadm")[0] == 0  # ipvsadm reads nothing, says nothing


def test_a_change_whose_output_fails_is_finished(netns, tmp_path):
    """apply and restore with their output lost to a full disk or a reader
    that left: every change is made, then the error (or SIGPIPE) ends them."""
    assert run_ipvsadm(netns, "-R", input=_rules(SERVICES)).returncode == 0
    desired = tmp_path / "desired.rules"
    desired.write_text(_rules(SERVICES, weight=2, scheduler="wrr"))
    want = run_ipvsadm(netns, "-Sn").stdout.replace("-s rr", "-s wrr").replace("-w 1", "-w 2")
    status, err = sh(netns, f"apply {desired} | head -1 > /dev/null")
    assert (status, err) == (141, "")
    assert run_ipvsadm(netns, "-Sn").stdout == want

    more = tmp_path / "more.rules"
    more.write_text("".join(f"-A -t 10.60.{i // 250}.{i % 250}:80 -s rr\n" for i in range(500)) + "-Ln\n")
    status, err = sh(netns, f"restore {more} > /dev/full")
    assert (status, err) == (1, "ipvsctl: write error: No space left on device\n")
    status, err = sh(netns, f"-R < {more} | head -1 > /dev/null")
    assert status == 141
    assert err.count("Service already exists") == 500  # reported, and then SIGPIPE
    saved = run_ipvsadm(netns, "-Sn").stdout
    assert saved.count("-A -t 10.60.") == 500 and saved.count("-s wrr") == SERVICES
