"""`ipvsctl restore` never empties a table and then fails (issue 10).

* Scheduler and persistence-engine names are checked against the kernel
  before anything changes, with a "did you mean" hint; `--dry-run` fails on
  them too and says what it checked and what it could not.
* A restore that clears the table (`--flush`, or a `-C` line) and then
  meets a refusal the checks cannot foresee puts the table back as it was.
* `--flush` is no line of the input: line numbers and counts are the file's.
* An input that is empty (a failed render, stdin from /dev/null) never
  clears the table: `restore --flush` and `apply --prune` refuse it.
* The name check agrees with the kernel: for every scheduler name, the
  check says "available" exactly when the kernel accepts it.

ipvsctl runs in-process (`run_app` with `--netns`); the real ipvsadm reads
the tables back.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from nsutil import run_ipvsadm

from ipvsctl import schedulers
from ipvsctl.commands.group import run_app

TABLE = [
    "-A -t 10.50.0.1:80 -s wlc",
    "-a -t 10.50.0.1:80 -r 10.51.0.1:8080 -m -w 3 -x 100 -y 20",
    "-a -t 10.50.0.1:80 -r 10.51.0.2 -g -w 0",
    "-A -u 10.50.0.2:5060 -s rr -p 60 --pe sip",
    "-a -u 10.50.0.2:5060 -r 10.51.0.3:5060 -m",
    "-A -f 7 -s sh -b sh-port",
    "-a -f 7 -r 10.51.0.4 -i --tun-type gue --tun-port 6080",
]


def app(*args: str, stdin: str = "") -> tuple[int, str, str]:
    import sys

    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = run_app(list(args), "ipvsctl")
    finally:
        sys.stdin = saved
    return status, out.getvalue(), err.getvalue()


def _build(ns) -> str:
    r = run_ipvsadm(ns, "-R", input="\n".join(TABLE) + "\n")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return _saved(ns)


def _saved(ns) -> str:
    return run_ipvsadm(ns, "-Sn").stdout + run_ipvsadm(ns, "-Ln", "--thresholds").stdout


def test_flush_with_a_misspelt_scheduler_changes_nothing(netns, tmp_path):
    before = _build(netns)
    saved = run_ipvsadm(netns, "-Sn").stdout
    bad = tmp_path / "rules"
    bad.write_text(saved.replace("-s wlc", "-s wrrr").replace("--pe sip", "--pe sipp"))
    lines = bad.read_text().splitlines()
    wrrr = 1 + next(i for i, x in enumerate(lines) if "wrrr" in x)
    sipp = 1 + next(i for i, x in enumerate(lines) if "sipp" in x)

    for extra in ([], ["--dry-run"]):
        status, out, err = app("restore", "--flush", *extra, str(bad), "--netns", netns.name)
        assert status == 2 and out == "", (extra, err)
        assert (f"restore: line {wrrr}: scheduler 'wrrr' is not available: module ip_vs_wrrr "
                "is not loaded, and ") in err
        assert "did you mean 'wrr'?" in err
        assert f"restore: line {sipp}: persistence engine 'sipp' is not available" in err
        assert "did you mean 'sip'?" in err
        assert err.endswith("ipvsctl: restore: nothing was changed\n")
        assert _saved(netns) == before

    # the same through JSON
    _, doc, _ = app("list", "--json", "--netns", netns.name)
    data = json.loads(doc)
    data["services"][0]["scheduler"] = "wrrr"
    status, _, err = app("restore", "--json", "--flush", "--netns", netns.name,
                         stdin=json.dumps(data))
    assert status == 2 and "restore: services[0]: scheduler 'wrrr' is not available" in err
    assert _saved(netns) == before


@pytest.mark.parametrize("command", [("restore", "--flush"), ("restore", "--json", "--flush"),
                                     ("restore", "--flush", "--dry-run"), ("apply", "--prune"),
                                     ("apply", "--prune", "--scope", "10.50.0.0/16"), ("diff", "--prune")])
def test_an_empty_input_never_empties_the_table(netns, tmp_path, command):
    before = _build(netns)
    empty = tmp_path / "rules"
    for content in ("", "\n \t\n"):
        empty.write_text(content)
        for where in ([str(empty)], ["-"], []):  # a file, standard input as - and by default
            status, out, err = app(*command, "--netns", netns.name, *where, stdin=content)
            name = where[0] if where and where[0] != "-" else "standard input"
            assert status == 2 and out == "", (command, where, err)
            flag = "--flush" if command[0] == "restore" else "--prune"
            assert err.startswith(f"ipvsctl: {command[0]}: {name} is empty: with {flag} "), err
            assert "(nothing was changed)" in err
            assert _saved(netns) == before
    # An empty table written as one is taken at its word.
    empty.write_text("# nothing here any more\n")
    if command[0] == "restore" and "--json" not in command and "--dry-run" not in command:
        assert app(*command, "--netns", netns.name, str(empty))[0] == 0
        assert run_ipvsadm(netns, "-Sn").stdout == ""
    elif command[:2] == ("apply", "--prune"):
        assert app(*command, "--netns", netns.name, str(empty))[0] == 0
        left = run_ipvsadm(netns, "-Sn").stdout
        assert left == ("" if len(command) == 2 else "-A -f 7 -s sh -b sh-port\n"
                        "-a -f 7 -r 10.51.0.4:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum\n")


def test_flush_then_a_kernel_refusal_puts_the_table_back(netns, tmp_path):
    before = _build(netns)
    # Valid lines the kernel refuses only when it gets them: a lower
    # threshold above the upper one (ERANGE), a second add of one service.
    rules = tmp_path / "rules"
    rules.write_text("-A -t 10.52.0.1:80 -s rr\n"
                     "-a -t 10.52.0.1:80 -r 10.53.0.1 -m -x 10 -y 50\n"
                     "-A -t 10.52.0.1:80 -s rr\n")
    status, out, err = app("restore", "--flush", str(rules), "--netns", netns.name)
    assert status == 255 and out == ""
    assert err == ("line 2: Numerical result out of range\n"
                   "line 3: Service already exists\n"
                   "restore: 2 of 3 commands failed (lines 2, 3); the table was put back as it "
                   "was (3 services, 4 real servers; counters start again from zero)\n")
    assert _saved(netns) == before

    # a -C line in the file clears the table as --flush does
    rules.write_text("-C\n-A -t 10.52.0.1:80 -s rr\n-A -t 10.52.0.1:80\n")
    status, _, err = app("restore", str(rules), "--netns", netns.name)
    assert status == 255 and "the table was put back as it was" in err
    assert _saved(netns) == before

    # JSON: the same refusal after --flush
    doc = {"services": [{"protocol": "tcp", "address": "10.52.0.1", "port": 80, "destinations": [
        {"address": "10.53.0.1", "forward": "masq", "u_threshold": 10, "l_threshold": 50}]}]}
    status, _, err = app("restore", "--json", "--flush", "--netns", netns.name,
                         stdin=json.dumps(doc))
    assert status == 255
    assert err.splitlines() == [
        "restore: services[0].destinations[0] (TCP 10.52.0.1:80 -> 10.53.0.1:80): "
        "Numerical result out of range",
        "restore: 1 of 2 requests failed; the table was put back as it was (3 services, 4 real "
        "servers; counters start again from zero)"]
    assert _saved(netns) == before


def test_flush_counts_only_the_lines_of_the_file(netns, tmp_path):
    rules = tmp_path / "rules"
    rules.write_text("-A -t 10.54.0.1:80\n-A -t 10.54.0.1:80\n-A -t 10.54.0.2:80\n")
    status, _, err = app("restore", "--flush", str(rules), "--netns", netns.name)
    assert status == 255
    assert err.splitlines()[:2] == [
        "line 2: Service already exists",
        "restore: 1 of 3 commands failed (lines 2); the table was put back as it was "
        "(0 services, 0 real servers; counters start again from zero)"]
    # and without a failure, every line of the file applied after the flush
    run_ipvsadm(netns, "-A", "-t", "10.54.0.9:80")
    rules.write_text("-A -t 10.54.0.1:80\n-A -t 10.54.0.2:80\n")
    assert app("restore", "--flush", str(rules), "--netns", netns.name) == (0, "", "")
    assert run_ipvsadm(netns, "-Sn").stdout == ("-A -t 10.54.0.1:80 -s wlc\n"
                                                 "-A -t 10.54.0.2:80 -s wlc\n")


def test_dry_run_says_what_it_checked_and_what_not(netns, tmp_path):
    rules = tmp_path / "rules"
    rules.write_text("\n".join(TABLE) + "\n")
    status, out, err = app("restore", "--dry-run", "--flush", str(rules), "--netns", netns.name)
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        "restore: valid: 7 commands (dry run: nothing was changed)",
        "  checked: every line's options and values, as ipvsadm checks them (names resolved)",
        "  checked: this kernel has the schedulers wlc, rr, sh and the persistence engines sip named",
        "  not checked: what the kernel decides about each change (a service or real server "
        "that already exists or does not, an address it refuses, ...): only the real run finds "
        "out, and reports every refusal",
        "  clears the table: if any change then fails, the table is put back as it was"]
    assert run_ipvsadm(netns, "-Sn").stdout == ""


def test_the_name_check_agrees_with_the_kernel(netns):
    """Every scheduler and engine name the check calls available, the kernel
    takes; every one it calls missing, the kernel refuses."""
    probe = schedulers.Probe()
    names = [("scheduler", s) for s in schedulers.SCHEDULERS + ("wrrr", "nosuch", "RR")]
    names += [("pe", "sip"), ("pe", "sipp")]
    for i, (kind, name) in enumerate(names):
        state, message = schedulers.check(kind, name, probe)
        assert state in (schedulers.AVAILABLE, schedulers.MISSING), message
        line = ["-A", "-u", f"10.55.0.{i + 1}:53", "-s", name if kind == "scheduler" else "rr"]
        if kind == "pe":
            line += ["-p", "--pe", name]
        r = run_ipvsadm(netns, *line)
        kernel_takes = r.returncode == 0
        assert kernel_takes == (state == schedulers.AVAILABLE), (name, message, r.stderr)
        if not kernel_takes:
            assert r.stderr == "Scheduler or persistence engine not found\n"
