"""diff, apply and drain through click, on the in-memory kernel: output,
exit statuses, and nothing sent on bad input."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner
from support.fake_ipvs import MemoryIPVS

from ipvsctl import model as m

LIVE_RULES = """\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1
-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1
-A -u 10.9.0.1:53 -s rr
"""
DESIRED = """\
-A -t 10.0.0.1:80 -s wrr
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 3
-a -t 10.0.0.1:80 -r 10.1.0.3:80 -m -w 1
-A -t 10.0.0.2:443 -s sh -b sh-port
"""


@pytest.fixture
def kernel(monkeypatch, tmp_path):
    from ipvsctl import session
    from ipvsctl.desired import source

    from ipvsctl.desired import sysctls

    monkeypatch.setenv("IPVSCTL_LOCK_DIR", str(tmp_path / "locks"))
    # The host's own sysctls (or their absence) must not leak into the output.
    monkeypatch.setattr(sysctls, "read", lambda netns=None: dict.fromkeys(sysctls.NAMES, 0))
    # The host has no IPVS modules: the name check is told every name the
    # in-memory kernel knows is available (test_a_scheduler_... below).
    from ipvsctl import schedulers

    def state(probe, module):
        known = module.removeprefix("ip_vs_pe_").removeprefix("ip_vs_") in k.schedulers | {"sip"}
        return (schedulers.AVAILABLE, "loaded") if known else (schedulers.MISSING, f"no {module}")

    monkeypatch.setattr(schedulers.Probe, "state", state)
    k = MemoryIPVS(source.load(LIVE_RULES).entries)
    monkeypatch.setattr(session, "open_backend", lambda netns: k)
    return k


class Result:
    def __init__(self, exit_code, output):
        self.exit_code = exit_code
        self.output = output


def run(*args, input=None):
    """The subcommand as ipvsctl.cli.main runs it (run_app: the returned
    status is the exit status), standard output and error mixed."""
    from ipvsctl.commands.group import run_app

    with CliRunner().isolation(input=input) as outs:
        status = run_app(list(args))
        sys.stdout.flush()
        sys.stderr.flush()
        mixed = outs[2] if len(outs) > 2 else outs[0]
        return Result(status, mixed.getvalue().decode())


def test_diff_text_and_exit_status(kernel):
    r = run("diff", "-", input=DESIRED)
    assert r.exit_code == 1
    assert r.output == (
        "TCP 10.0.0.1:80: change (real servers: 1 added, 1 changed, 1 removed)\n"
        "    scheduler: rr \u2192 wrr\n"
        "  - 10.1.0.2:80\n"
        "  ~ 10.1.0.1:80  weight: 1 \u2192 3\n"
        "  + 10.1.0.3:80  masq, weight 1\n"
        "TCP 10.0.0.2:443: add (sh, flags sh-port; 0 real servers)\n"
        "services: 1 added, 1 changed; real servers: 1 added, 1 changed, 1 removed; 0 services unchanged\n"
        "  net.ipv4.vs.expire_nodest_conn = 0: a removed real server's connections stay in the table "
        "and their packets are dropped until they time out: clients still using it hang\n"
        "  net.ipv4.vs.expire_quiescent_template = 0: persistent clients keep coming back to a "
        "weight-0 server through their templates: draining a persistent service lasts as long as they do\n"
        "  net.ipv4.vs.conn_reuse_mode = 0: a new connection from a reused client port goes to the "
        "server of the old one, even at weight 0: a draining server can still receive new connections\n")
    assert kernel.sent == []


def test_diff_rules_and_json(kernel):
    r = run("diff", "--format", "rules", "-", input=DESIRED)
    assert r.exit_code == 1
    assert r.output == ("-E -t 10.0.0.1:80 -s wrr\n"
                        "-d -t 10.0.0.1:80 -r 10.1.0.2:80\n"
                        "-e -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 3\n"
                        "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -m -w 1\n"
                        "-A -t 10.0.0.2:443 -s sh -b sh-port\n")
    doc = json.loads(run("diff", "--format", "json", "--prune", "-", input=DESIRED).output)
    assert doc["in_sync"] is False and doc["prune"] is True
    assert [s["action"] for s in doc["services"]] == ["change", "add", "remove"]
    assert doc["services"][0]["changes"] == [{"field": "scheduler", "old": "rr", "new": "wrr"}]
    assert doc["services"][0]["servers"][1] == {
        "family": "inet", "address": "10.1.0.1", "port": 80, "action": "change",
        "old": {"forward": "masq", "weight": 1, "u_threshold": 0, "l_threshold": 0, "tunnel": None},
        "new": {"forward": "masq", "weight": 3, "u_threshold": 0, "l_threshold": 0, "tunnel": None},
        "changes": [{"field": "weight", "old": 1, "new": 3}], "note": None}
    assert doc["steps"][-1]["rule"] == "-D -u 10.9.0.1:53"
    assert set(doc["sysctls"]) == {"expire_nodest_conn", "expire_quiescent_template", "conn_reuse_mode"}


def test_diff_in_sync_is_status_0(kernel):
    r = run("diff", "-", input=LIVE_RULES)
    assert (r.exit_code, r.output) == (0, "in sync (2 services unchanged)\n")


@pytest.mark.parametrize("text,status,message", [
    ("-A -t 10.0.0.1:80\n-C\n", 2, "line 2: -C (clear the table) has no place in a desired table"),
    ("-A -t 10.0.0.1:80 -s\n", 255, "line 1: "),
    ('{"services": [{"fwmark": 0}]}', 2, "services[0].fwmark: 0 is out of range"),
    # What json.loads itself raises besides JSONDecodeError ended in a traceback.
    ('{"services": ' + "[" * 100_000 + "]" * 100_000 + "}", 2, "nested too deeply"),
    ('{"services": [{"fwmark": ' + "9" * 5000 + "}]}", 2, "more digits than Python reads"),
    # A key given twice is refused, not decided by the last one.
    ('{"services": [{"fwmark": 1, "scheduler": "rr", "scheduler": "wrr"}]}', 2,
     "services[0].scheduler: given more than once in one object"),
])
def test_bad_input_changes_nothing_and_says_where(kernel, text, status, message):
    for command in ("diff", "apply"):
        r = run(command, "-", input=text)
        assert r.exit_code == status, r.output
        assert message in r.output and "nothing was changed" in r.output
    assert kernel.sent == []


def test_a_byte_order_mark_does_not_hide_json(kernel):
    # Some editors start a file with one: it used to make the document
    # "line 1: not an ipvsadm command line" (255).
    doc = {"services": [{"protocol": "udp", "address": "10.9.0.1", "port": 53, "scheduler": "rr"}]}
    for text in ("\ufeff" + json.dumps(doc), "\ufeff-A -u 10.9.0.1:53 -s rr\n"):
        r = run("diff", "-", input=text)
        assert (r.exit_code, r.output) == (0, "in sync (1 service unchanged)\n")


def test_standard_input_that_is_not_utf8_is_refused_as_a_file_is(tmp_path):
    # A real process: its sys.stdin decodes with surrogateescape, which let
    # the byte through as text (a scheduler "r\udcffr"; 255 for a bare
    # byte; a traceback from the JSON document).  Nothing reaches a kernel.
    import subprocess

    for data in (b"-A -t 10.0.0.1:80 -s r\xffr\n", b"\xff\n",
                 b'{"services": [{"fwmark": 1, "scheduler": "r\xffr"}]}'):
        f = tmp_path / "desired"
        f.write_bytes(data)
        at = data.index(b"\xff")
        for command in ("diff", "apply"):
            for arg, name in ((str(f), str(f)), ("-", "standard input")):
                r = subprocess.run([sys.executable, "-m", "ipvsctl", command, arg], input=data,
                                   capture_output=True, timeout=60)
                assert (r.returncode, r.stdout, r.stderr.decode()) == (
                    2, b"", f"ipvsctl: {name}: not UTF-8 text (invalid start byte at byte {at})\n")


def test_a_scheduler_the_kernel_lacks_is_refused_before_anything_is_read(kernel):
    for command in ("diff", "apply"):
        r = run(command, "-", input=DESIRED + "-A -t 10.0.0.3:80 -s wrrr\n")
        assert r.exit_code == 2, r.output
        assert ("standard input: line 5: scheduler 'wrrr' is not available: no ip_vs_wrrr; "
                "did you mean 'wrr'?") in r.output
        assert r.output.endswith(f"ipvsctl: {command}: nothing was changed\n")
    assert kernel.sent == []


def test_a_scope_the_file_leaves_is_bad_input(kernel):
    r = run("apply", "--scope", "192.0.2.0/24", "-", input=DESIRED)
    assert r.exit_code == 2 and "line 1: TCP 10.0.0.1:80 is outside every --scope" in r.output
    r = run("apply", "--scope", "fwmark:x", "-", input=DESIRED)
    assert r.exit_code == 2 and "fwmark:LO-HI" in r.output
    assert kernel.sent == []


def test_apply_text_one_line_per_change_then_no_changes(kernel):
    r = run("apply", "-", input=DESIRED)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        "~ TCP 10.0.0.1:80: scheduler: rr \u2192 wrr",
        "- TCP 10.0.0.1:80 -> 10.1.0.2:80",
        "~ TCP 10.0.0.1:80 -> 10.1.0.1:80: weight: 1 \u2192 3",
        "+ TCP 10.0.0.1:80 -> 10.1.0.3:80 (masq, weight 1)",
        "+ TCP 10.0.0.2:443 (sh, flags sh-port)",
        "applied 5 changes (services: 1 added, 1 changed; real servers: 1 added, 1 changed, 1 removed;"
        " 0 services unchanged); verified"]
    sent = len(kernel.sent)
    r = run("apply", "-", input=DESIRED)
    assert (r.exit_code, r.output) == (0, "no changes\n") and len(kernel.sent) == sent


def test_apply_json_report(kernel):
    doc = json.loads(run("apply", "--format", "json", "-", input=DESIRED).output)
    assert doc["changed"] is True and doc["rolled_back"] is False and doc["failed"] == []
    assert len(doc["applied"]) == 5 and doc["verified"] is True and doc["requests"] == 5
    doc = json.loads(run("apply", "--format", "json", "-", input=DESIRED).output)
    assert doc["changed"] is False and doc["applied"] == [] and doc["requests"] == 0


def test_apply_refused_rolls_back_with_ipvsadms_message(kernel, monkeypatch):
    # A name the check could not ask about reaches the kernel, which refuses it.
    from ipvsctl import schedulers

    monkeypatch.setattr(schedulers.Probe, "state",
                        lambda probe, module: (schedulers.UNKNOWN, "no loader to ask"))
    r = run("apply", "-", input=DESIRED.replace("-s sh -b sh-port", "-s nosuch"))
    assert r.exit_code == 255
    assert "apply: refused: -A -t 10.0.0.2:443 -s nosuch: Scheduler or persistence engine not found" in r.output
    assert "apply: rolled back: 4 changes undone, the table is as it was" in r.output
    assert run("diff", "-", input=LIVE_RULES).exit_code == 0


def test_apply_dry_run_is_diff(kernel):
    r = run("apply", "--dry-run", "-", input=DESIRED)
    assert r.exit_code == 1 and r.output.startswith("TCP 10.0.0.1:80: change") and kernel.sent == []
    doc = json.loads(run("apply", "--dry-run", "--format", "json", "-", input=DESIRED).output)
    assert doc["dry_run"] is True and doc["changed"] is True and doc["applied"] == []
    assert doc["requests"] == 0 and doc["verified"] is None and doc["interrupted"] is None
    # one shape for programs: the real run's report has the same keys, in the same order
    real = json.loads(run("apply", "--format", "json", "-", input=DESIRED).output)
    assert list(doc) == list(real) and real["dry_run"] is False
    assert doc["plan"] == real["plan"]
    in_sync = json.loads(run("apply", "--dry-run", "--format", "json", "-", input=DESIRED).output)
    assert in_sync["changed"] is False and in_sync["plan"]["in_sync"] is True


def test_drain_idle_server_is_removed_at_once(kernel):
    r = run("drain", "-t", "10.0.0.1:80", "-r", "10.1.0.2")
    assert r.exit_code == 0, r.output
    assert "draining 10.1.0.2:80 of TCP 10.0.0.1:80: weight 1 \u2192 0" in r.output
    assert r.output.rstrip().endswith("drained 10.1.0.2:80 of TCP 10.0.0.1:80 in 0 s: removed")
    assert [q.op for q in kernel.sent] == ["edit_dest", "del_dest"]
    assert kernel.sent[0].dest.fwd == m.FWD_MASQ and kernel.sent[0].dest.weight == 0


def test_drain_timeout_leaves_weight_0_and_exits_1(kernel):
    k = kernel.services and next(iter(kernel.services))
    kernel.conns[(k, (m.AF_INET, "10.1.0.1", 80))] = (1, 2, 0)
    r = run("drain", "-t", "10.0.0.1:80", "-r", "10.1.0.1:80", "--timeout", "0.3", "--interval", "0.05")
    assert r.exit_code == 1
    assert ("timed out after 0 s: 10.1.0.1:80 of TCP 10.0.0.1:80 still has 3 connections "
            "(1 active, 2 inactive, 0 persistence templates); left at weight 0") in r.output
    assert kernel.dests[k][(m.AF_INET, "10.1.0.1", 80)].weight == 0


def test_drain_keep_and_errors(kernel):
    r = run("drain", "-t", "10.0.0.1:80", "-r", "10.1.0.1:80", "--keep")
    assert r.exit_code == 0 and "kept at weight 0" in r.output
    r = run("drain", "-t", "10.0.0.1:80", "-r", "10.1.0.7:80")
    assert r.exit_code == 2 and "10.1.0.7:80 of TCP 10.0.0.1:80: No such destination" in r.output
    r = run("drain", "-t", "10.0.0.5:80", "-r", "10.1.0.7:80")
    assert r.exit_code == 2 and "TCP 10.0.0.5:80: No such service" in r.output
    r = run("drain", "-r", "10.1.0.7:80")
    assert r.exit_code == 2


@pytest.mark.parametrize("args", [
    ("drain", "-t", "10.0.0.1:80", "-r", "10.1.0.1:80", "--interval", "nan"),
    ("drain", "-t", "10.0.0.1:80", "-r", "10.1.0.1:80", "--timeout", "nan"),
    ("drain", "-t", "10.0.0.1:80", "-r", "10.1.0.1:80", "--interval", "inf"),
    ("apply", "--drain", "nan", "-"),
    ("apply", "--drain", "1", "--interval", "nan", "-"),
])
def test_seconds_that_are_no_number_are_refused_before_anything_is_sent(kernel, args):
    # "nan" passed click's FloatRange: --interval nan ended the drain in
    # time.sleep(nan)'s ValueError with the server left at weight 0, and
    # --timeout nan waited for ever, showing "nan s".
    k = next(iter(kernel.services))
    kernel.conns[(k, (m.AF_INET, "10.1.0.1", 80))] = (1, 0, 0)
    r = run(*args, input=DESIRED)
    assert r.exit_code == 2, r.output
    assert "is not a number of seconds" in r.output
    assert kernel.sent == []


@pytest.fixture
def own_sigterm():
    """SIGTERM raises here unless a guard of ipvsctl holds it (its default
    would end the test run)."""
    import signal

    def outside(signum, frame):
        raise AssertionError("SIGTERM reached the default handling, outside ipvsctl's guard")

    old = signal.signal(signal.SIGTERM, outside)
    yield
    signal.signal(signal.SIGTERM, old)


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_signal_while_the_report_is_written_lets_it_finish(kernel, monkeypatch, own_sigterm, name):
    # The report was written after apply's guard had ended: a SIGINT there
    # said only "interrupted" (130) and a SIGTERM killed the process
    # silently (143); both statuses say "rolled back", and the table was
    # the file's.  Now the signal finds the work done and is ignored.
    import os
    import signal

    from ipvsctl.desired import render as R

    real, fired = R.step_line, []

    def step_line(step):
        if not fired:
            fired.append(os.kill(os.getpid(), getattr(signal, name)))
        return real(step)

    monkeypatch.setattr(R, "step_line", step_line)
    r = run("apply", "-", input=DESIRED)
    assert fired and r.exit_code == 0, r.output
    assert r.output.endswith("); verified\n") and "interrupted" not in r.output, r.output
    assert run("diff", "-", input=DESIRED).exit_code == 0


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_signal_while_the_file_is_read_says_nothing_was_changed(kernel, monkeypatch, own_sigterm, name):
    import os
    import signal

    from ipvsctl.desired import source

    real = source.load

    def load(text):
        os.kill(os.getpid(), getattr(signal, name))
        return real(text)

    monkeypatch.setattr(source, "load", load)
    r = run("apply", "-", input=DESIRED)
    assert (r.exit_code, r.output) == (
        128 + getattr(signal, name),
        f"ipvsctl: apply: interrupted by {name} before anything was sent: nothing was changed\n")
    assert kernel.sent == []


@pytest.mark.parametrize("args", [
    ("watch", "--iterations", "2", "--interval", "inf"),  # was: OverflowError from time.sleep
    ("watch", "--iterations", "2", "--interval", "1e19"),
    ("watch", "--once", "--interval", "nan"),
    ("drain", "-t", "10.0.0.1:80", "-r", "10.1.0.1:80", "--timeout", "nan"),  # was: "up to nan s", for ever
    ("drain", "-t", "10.0.0.1:80", "-r", "10.1.0.1:80", "--interval", "inf"),
    ("apply", "--drain", "inf", "-"),
    ("apply", "--interval", "nan", "-"),
    ("metrics", "--wait", "inf"),
])
def test_seconds_that_are_not_a_finite_number_are_refused(kernel, args):
    """Every SECONDS option refuses nan, inf and what no sleep or lock can
    wait, naming the option, before anything is read or changed; watch's
    plain line (views.run_fast, no click) included."""
    from ipvsctl import cli

    with CliRunner().isolation(input=DESIRED) as outs:
        status = cli._run(list(args), "ipvsctl")
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = outs[0].getvalue().decode(), outs[1].getvalue().decode()
    option = args[-2] if args[-1] != "-" else args[-3]
    assert status == 2, (out, err)
    assert f"Invalid value for '{option}'" in err and "is not a number of seconds" in err
    assert out == "" and kernel.sent == []


@pytest.mark.parametrize("args", [
    ("drain", "-t", "10.0.0.1:80", "-r", "10.1.0.1:80", "-r", "10.1.0.2:80"),  # was: drained 10.1.0.2 alone
    ("drain", "-t", "10.0.0.1:80", "-t", "10.0.0.2:443", "-r", "10.1.0.1:80"),
    ("drain", "-f", "1", "--fwmark-service", "2", "-r", "10.1.0.1"),
    ("list", "-t", "10.0.0.1:80", "-t", "10.9.0.1:53"),  # was: the last service shown, the first ignored
    ("list", "--address", "10.1.0.1", "--address=10.1.0.2"),
    ("watch", "--once", "-u", "10.9.0.1:53", "--udp-service", "10.9.0.1:53"),
    ("conns", "-r", "10.1.0.1", "-r", "10.1.0.2"),
    ("conns", "--client", "198.51.100.0/24", "--client", "203.0.113.0/24"),
])
def test_an_option_that_names_one_thing_refuses_to_be_given_twice(kernel, args):
    """click keeps the last of a repeated option without a word: `drain -r
    A -r B` drained B, and A, which the user also named, stayed."""
    from ipvsctl import cli

    with CliRunner().isolation() as outs:
        status = cli._run(list(args), "ipvsctl")
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = outs[0].getvalue().decode(), outs[1].getvalue().decode()
    assert status == 2 and out == "", (out, err)
    assert "given 2 times (" in err and "); it names one" in err
    assert kernel.sent == []


def test_watch_once_with_iterations_is_refused(kernel):
    """--once won over --iterations N without a word; --iterations 1 is --once."""
    from ipvsctl import cli

    for args, status in ((["watch", "--once", "--iterations", "3"], 2),
                         (["watch", "--iterations", "3", "--once", "--interval", "0.1"], 2),
                         (["watch", "--once", "--iterations", "1"], 0)):
        with CliRunner().isolation() as outs:
            got = cli._run(args, "ipvsctl")
            sys.stdout.flush()
            sys.stderr.flush()
            out, err = outs[0].getvalue().decode(), outs[1].getvalue().decode()
        assert got == status, (args, err)
        if status:
            assert out == "" and "--once and --iterations 3 do not go together" in err
        else:
            assert out.count("busiest first") == 1
