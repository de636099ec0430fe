"""``ipvsctl restore`` (lines and JSON) stopped by SIGINT or SIGTERM (issue
13, item 3): it says up to where everything was sent, a restore that
clears puts the table back, and a signal before anything is sent changes
nothing.  Over a fake IPVS behind the netlink socket that sends the signal
at a chosen window (support.signalling)."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest
from click.testing import CliRunner
from support.signalling import N, lines, over, services
from support.fake_ipvs import Table

from ipvsctl import session
from ipvsctl.commands import restore as restore_command
from ipvsctl.commands.group import run_app
from ipvsctl.model import AF_INET, IPPROTO_TCP, Destination, Service, ServiceKey


@pytest.fixture(autouse=True)
def names_available(monkeypatch):
    """This host has no IPVS modules: restore's check of scheduler names would refuse."""
    from ipvsctl import schedulers

    monkeypatch.setattr(schedulers, "check", lambda kind, name, probe: (schedulers.AVAILABLE, "loaded"))


def run_restore(args, backend, tmp_path, text: str):
    f = tmp_path / "input"
    f.write_text(text)
    real = session.open_backend
    session.open_backend = lambda netns: backend
    try:
        with CliRunner().isolation() as outs:
            status = run_app(["restore", *args, str(f)])
            sys.stdout.flush()
            sys.stderr.flush()
            err = outs[1].getvalue().decode() if len(outs) > 2 else outs[0].getvalue().decode()
    finally:
        session.open_backend = real
    return status, err


def test_restore_stops_and_says_where(tmp_path):
    table = Table()
    backend, sock = over(table, 2, signal.SIGINT)
    status, err = run_restore([], backend, tmp_path, "\n".join(lines()) + "\n")
    window = backend._t.window_msgs
    assert status == 130
    assert err.splitlines()[-1] == (
        f"restore: interrupted by SIGINT: every line up to line {2 * window} was sent "
        f"({2 * window} applied, 0 failed); from line {2 * window + 1} on nothing was applied")
    assert services(table) == set(lines()[:2 * window])


def test_restore_that_clears_puts_the_table_back_on_a_signal(tmp_path):
    table = Table()
    old = Service(ServiceKey(AF_INET, IPPROTO_TCP, "192.0.2.1", 80), "wlc")
    table.add_service(old)
    table.add_dest(old.key, Destination(AF_INET, "198.51.100.1", 80))
    backend, sock = over(table, 2, signal.SIGTERM)
    status, err = run_restore(["--flush"], backend, tmp_path, "\n".join(lines()) + "\n")
    assert status == 143
    last = err.splitlines()[-1]
    assert last.startswith("restore: interrupted by SIGTERM: every line up to line ")
    assert last.endswith("; the table was put back as it was (1 services, 1 real servers; "
                         "counters start again from zero)")
    assert [s.key for s in table.services] == [old.key]
    assert [(d.addr, d.port) for d in table.dests[old.key]] == [("198.51.100.1", 80)]


def test_restore_json_stops_and_says_where(tmp_path):
    doc = {"services": [{"family": "inet", "protocol": "tcp", "address": f"10.0.{i // 250}.{i % 250 + 1}",
                         "port": 80, "scheduler": "rr", "destinations": []} for i in range(N)]}
    table = Table()
    backend, sock = over(table, 1, signal.SIGTERM)
    window = backend._t.window_msgs
    status, err = run_restore(["--json"], backend, tmp_path, json.dumps(doc))
    assert status == 143
    assert err.splitlines()[-1] == (
        f"restore: interrupted by SIGTERM: every request up to services[{window - 1}] was sent "
        f"({window} applied, 0 failed); from services[{window}] on nothing was applied")
    assert len(table.services) == window


def test_a_signal_before_anything_is_sent_changes_nothing(tmp_path):
    table = Table()
    backend, sock = over(table, 0, signal.SIGINT)
    real = restore_command._names

    def names(job):  # while the names are checked: nothing sent yet
        os.kill(os.getpid(), signal.SIGINT)
        return real(job)

    restore_command._names = names
    try:
        status, err = run_restore([], backend, tmp_path, "\n".join(lines(10)) + "\n")
    finally:
        restore_command._names = real
    assert status == 130
    assert err == "ipvsctl: restore: interrupted by SIGINT before anything was sent: nothing was changed\n"
    assert table.services == []


@pytest.mark.parametrize("text, is_json", [
    ('{"services": []}', True),
    ('  \n[\n  {"services": []}\n]', True),
    ("[]", True),
    ("[global]\n-A -t 10.0.0.1:80\n", False),  # an ini-style header: refused by its line
    ("[2001:db8::1]\n", False),
    ("-A -t 10.0.0.1:80 -s rr\n", False),
])
def test_only_a_json_document_is_taken_for_one(tmp_path, text, is_json):
    f = tmp_path / "input"
    f.write_text(text)
    assert restore_command._Input(str(f)).looks_like_json() is is_json
