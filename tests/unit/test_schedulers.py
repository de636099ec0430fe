"""The scheduler and persistence-engine check, with the kernel's files faked
(tests/kernel/test_restore_safety.py holds it to the real kernel)."""

from __future__ import annotations

import os
import stat

from ipvsctl import model as m
from ipvsctl import schedulers as s


def _probe(tmp_path, loaded=("ip_vs", "ip_vs_rr"), helper="", disabled="0", finds=()):
    (tmp_path / "modules").write_text("".join(f"{x} 16384 0 - Live 0x0\n" for x in loaded))
    (tmp_path / "sys").mkdir(exist_ok=True)
    (tmp_path / "disabled").write_text(disabled + "\n")
    if helper == "fake":
        script = tmp_path / "modprobe"
        # exit 0 for the modules it "finds", 1 for any other; record the call
        script.write_text("#!/bin/sh\nprintf '%%s\\n' \"$*\" >> %s\ncase \"$4\" in %s) exit 0;; esac\nexit 1\n"
                          % (tmp_path / "calls", "|".join(finds) or "__none__"))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        helper = str(script)
    (tmp_path / "helper").write_text(helper + "\n")
    return s.Probe(proc_modules=str(tmp_path / "modules"), sys_module=str(tmp_path / "sys"),
                   helper_file=str(tmp_path / "helper"), disabled_file=str(tmp_path / "disabled"))


def test_a_loaded_module_is_available_without_asking_the_loader(tmp_path):
    p = _probe(tmp_path, helper="fake")
    assert s.check("scheduler", "rr", p)[0] == s.AVAILABLE
    assert not os.path.exists(tmp_path / "calls")


def test_the_loader_is_asked_for_a_dry_run(tmp_path):
    p = _probe(tmp_path, helper="fake", finds=("ip_vs_mh", "ip_vs_pe_sip"))
    assert s.check("scheduler", "mh", p)[0] == s.AVAILABLE
    assert s.check("pe", "sip", p)[0] == s.AVAILABLE
    state, message = s.check("scheduler", "twos", p)
    assert state == s.MISSING
    assert message == (f"scheduler 'twos' is not available: module ip_vs_twos is not loaded, and "
                       f"{tmp_path / 'modprobe'} does not find it")
    assert (tmp_path / "calls").read_text().splitlines() == [
        "-n -q -- ip_vs_mh", "-n -q -- ip_vs_pe_sip", "-n -q -- ip_vs_twos"]


def test_did_you_mean_or_the_list(tmp_path):
    p = _probe(tmp_path, helper="fake")
    assert s.check("scheduler", "wrrr", p)[1].endswith("; did you mean 'wrr'?")
    assert s.check("pe", "sipp", p)[1].endswith("; did you mean 'sip'?")
    assert s.check("scheduler", "zzz", p)[1].endswith(
        "; the kernel's are rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos")


def test_no_loading_means_only_loaded_modules(tmp_path):
    p = _probe(tmp_path, helper="", finds=("ip_vs_mh",))
    state, message = s.check("scheduler", "mh", p)
    assert state == s.MISSING and "has no module loader" in message
    p = _probe(tmp_path, helper="fake", disabled="1", finds=("ip_vs_mh",))
    state, message = s.check("scheduler", "mh", p)
    assert state == s.MISSING and "loads no more modules" in message


def test_a_loader_that_cannot_run_is_reported_as_not_checked(tmp_path):
    p = _probe(tmp_path, helper=str(tmp_path / "no-such-modprobe"))
    state, message = s.check("scheduler", "mh", p)
    assert state == s.UNKNOWN and message.startswith("could not ask the kernel's module loader")


def test_report_names_each_missing_name_once_with_every_place(tmp_path):
    p = _probe(tmp_path, helper="fake")

    def svc(sched, pe=""):
        return m.Service(key=m.ServiceKey(af=m.AF_INET, fwmark=1), scheduler=sched, pe_name=pe)

    report = s.check_services([("line 1", svc("rr")), ("line 3", svc("wrrr")),
                               ("line 7", svc("wrrr", "sip")), ("line 9", svc("wrrr"))], p)
    assert report.available == {"scheduler": ["rr"], "pe": []}
    lines = report.refusals()
    assert len(lines) == 2
    assert lines[0].startswith("line 3: scheduler 'wrrr' is not available")
    assert lines[0].endswith("did you mean 'wrr'? (also line 7, line 9)")
    assert lines[1].startswith("line 7: persistence engine 'sip' is not available")
