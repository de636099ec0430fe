"""`ipvsctl doctor`'s rules, on made-up facts (the real kernel reads them in
tests/kernel/test_doctor_conditions.py)."""

from __future__ import annotations

from ipvsctl import doctor
from ipvsctl import model as m

A4, A6 = m.AF_INET, m.AF_INET6
ALL_LOADED = {"ip_vs": "loaded", **{f"ip_vs_{s}": "loaded" for s in doctor.SCHEDULERS},
              "ip_vs_pe_sip": "loaded"}
DEFAULTS = {"conntrack": "0", "expire_nodest_conn": "0", "expire_quiescent_template": "0",
            "conn_reuse_mode": "1", "run_estimation": "1", "sync_version": "1",
            "sync_threshold": "3\t50", "sync_refresh_period": "0", "sync_persist_mode": "0"}


def facts(**kw) -> doctor.Facts:
    base = dict(kernel_release="6.1.0-18-amd64", info=m.Info(0x010201, 4096), modules=ALL_LOADED,
                sysctls=DEFAULTS, forwarding={"ipv4": "1", "ipv6": "0"}, timeouts=m.Timeouts(900, 120, 300))
    base.update(kw)
    return doctor.Facts(**base)


def by_id(f: doctor.Facts) -> dict[str, list[doctor.Finding]]:
    out: dict[str, list[doctor.Finding]] = {}
    for x in doctor.diagnose(f):
        out.setdefault(x.id, []).append(x)
    return out


def svc(addr="192.0.2.1", port=80, flags=0, timeout=0, af=A4, fwmark=0):
    key = m.ServiceKey(af, fwmark=fwmark) if fwmark else m.ServiceKey(af, m.IPPROTO_TCP, addr, port)
    return m.Service(key, "rr", flags, timeout)


def dest(addr="198.51.100.1", fwd=m.FWD_MASQ, weight=1, af=A4):
    return m.Destination(af, addr, 80, fwd, weight)


def test_a_healthy_director_has_no_problem():
    f = facts(table=[(svc(), [dest()])])
    found = doctor.diagnose(f)
    assert not doctor.has_problems(found)
    ids = [x.id for x in found]
    assert ids[:3] == ["ipvs", "schedulers", "persistence-engines"]
    assert {"conntrack", "expire_nodest_conn", "expire_quiescent_template", "conn_reuse_mode",
            "run_estimation", "sync-daemons", "nat-forwarding", "table"} <= set(ids)
    assert set(ids) <= set(doctor.check_ids())
    assert by_id(f)["ipvs"][0].message == "IPVS 1.2.1 is loaded (connection hash table: 4096 buckets)"


def test_ipvs_missing():
    f = facts(ipvs_loaded=False, info=None, modules={**ALL_LOADED, "ip_vs": "loadable"})
    (x,) = by_id(f)["ipvs"]
    assert x.status == "problem" and "`modprobe ip_vs` loads it" in x.message
    assert "table" not in by_id(f)  # nothing else can be read
    f = facts(ipvs_loaded=False, info=None, modules={"ip_vs": "missing"}, kernel_release="6.9.0")
    (x,) = by_id(f)["ipvs"]
    assert x.status == "problem" and "Linux 6.9.0 has no ip_vs module" in x.message
    assert by_id(f)["schedulers"][0].status == "problem"


def test_schedulers_loaded_loadable_missing():
    mods = {**ALL_LOADED, "ip_vs_twos": "missing", "ip_vs_mh": "loadable", "ip_vs_rr": "built-in"}
    (x,) = by_id(facts(modules=mods))["schedulers"]
    assert x.status == "ok"  # twos is younger than most kernels: not having it is no news
    assert "built in: rr" in x.message and "loadable on first use: mh" in x.message
    assert "not in this kernel: twos" in x.message
    (x,) = by_id(facts(modules={**mods, "ip_vs_sh": "missing"}))["schedulers"]
    assert x.status == "note" and "not in this kernel: sh twos" in x.message
    (x,) = by_id(facts())["schedulers"]
    assert x.status == "ok" and "not in this kernel" not in x.message


def test_each_sysctl_value_is_explained():
    f = facts(sysctls={**DEFAULTS, "conntrack": "1", "expire_nodest_conn": "1", "run_estimation": "0",
                       "conn_reuse_mode": "0"})
    got = by_id(f)
    assert got["conntrack"][0].message.startswith("conntrack = 1: conntrack entries are kept")
    assert got["expire_nodest_conn"][0].message.startswith("expire_nodest_conn = 1:")
    assert got["run_estimation"][0].status == "note" and "every rate is 0" in got["run_estimation"][0].message
    assert got["conn_reuse_mode"][0].message.startswith("conn_reuse_mode = 0: a new connection")
    assert "Linux 4.2" in got["conn_reuse_mode"][0].message
    got = by_id(facts(sysctls={**DEFAULTS, "conntrack": None, "run_estimation": None}))
    assert "CONFIG_IP_VS_NFCT" in got["conntrack"][0].message
    assert got["run_estimation"][0].status == "ok"


def test_conn_reuse_mode_with_conntrack_before_5_9_is_a_problem():
    s = {**DEFAULTS, "conntrack": "1", "conn_reuse_mode": "1"}
    (x,) = by_id(facts(sysctls=s, kernel_release="5.4.0-150-generic"))["conn_reuse_mode"]
    assert x.status == "problem" and "1 s" in x.message
    for release, sysctls in (("5.9.0", s), ("6.1.0", s), ("5.4.0", {**s, "conntrack": "0"}),
                             ("5.4.0", {**s, "conn_reuse_mode": "0"})):
        (x,) = by_id(facts(sysctls=sysctls, kernel_release=release))["conn_reuse_mode"]
        assert x.status == "note", (release, sysctls)


def test_expire_quiescent_template_matters_with_persistent_services():
    table = [(svc(flags=m.SVC_F_PERSISTENT, timeout=600), [dest()])]
    (x,) = by_id(facts(table=table))["expire_quiescent_template"]
    assert x.status == "note" and "up to 600 s" in x.message and "TCP 192.0.2.1:80" in x.message
    (x,) = by_id(facts(table=[(svc(), [dest()])]))["expire_quiescent_template"]
    assert x.status == "ok" and "no persistent service" in x.message


def test_table_problems():
    table = [(svc("192.0.2.1"), []),
             (svc("192.0.2.2"), [dest(weight=0), dest("198.51.100.2", weight=0)]),
             (svc(fwmark=7, af=A6), [dest("2001:db8::1", m.FWD_MASQ, af=A6)])]
    got = by_id(facts(table=table, forwarding={"ipv4": "0", "ipv6": "0"}))
    assert [x.message for x in got["empty-service"]] == [
        "TCP 192.0.2.1:80 has no real servers: its clients get no answer"]
    assert "TCP 192.0.2.2:80: every real server has weight 0" in got["all-weights-zero"][0].message
    nat = [x.message for x in got["nat-forwarding"]]
    assert nat[0].startswith("net.ipv4.ip_forward = 0 but TCP 192.0.2.2:80 has NAT")
    assert nat[1].startswith("net.ipv6.conf.all.forwarding = 0 but FWM 7 IPv6 has NAT")
    assert all(x.status == "problem" for x in got["nat-forwarding"])
    got = by_id(facts(table=[(svc(), [dest(fwd=m.FWD_ROUTE)])], forwarding={"ipv4": "0"}))
    assert "nat-forwarding" not in got and got["ip_forward"][0].status == "ok"


def test_sync_daemons_one_side_and_ignore():
    master = m.Daemon(m.DAEMON_MASTER, "sync0", 3)
    backup = m.Daemon(m.DAEMON_BACKUP, "sync1", 3)
    for daemons, status in (([], "ok"), ([master, backup], "ok"), ([master], "problem"),
                            ([backup], "problem")):
        (x,) = by_id(facts(daemons=daemons))["sync-daemons"]
        assert x.status == status, daemons
    found = doctor.diagnose(facts(daemons=[backup]))
    assert doctor.has_problems(found)
    doctor.apply_ignores(found, ["sync-daemons"])
    assert not doctor.has_problems(found)
    x = next(x for x in found if x.id == "sync-daemons")
    assert x.ignored and x.status == "note" and "only the backup sync daemon runs" in x.message
    got = by_id(facts(daemons=[master], sysctls={**DEFAULTS, "sync_threshold": "5\t0",
                                                   "sync_version": "0", "sync_persist_mode": "1"}))
    assert "synced once, after 5 incoming packets" in got["sync_threshold"][0].message
    assert got["sync_version"][0].status == "note"
    assert "sync_persist_mode" in got
    assert "sync_threshold" not in by_id(facts())  # no daemon: the sync settings are not explained


def test_report_document():
    found = doctor.diagnose(facts(table=[(svc(), [])]))
    doc = doctor.report_doc(found)
    assert doc["ok"] is False and doc["problems"] == 1
    assert {"id", "status", "message", "ignored"} == set(doc["findings"][0])


def test_report_lines_plain_and_in_colour():
    """One line per finding, never wrapped; colours as `list` writes them
    (render.layout), and none off a terminal or with --no-color."""
    from ipvsctl.render.doctor_view import report_lines
    from ipvsctl.render.layout import Out

    found = doctor.diagnose(facts(table=[(svc(), [])]))
    doctor.apply_ignores(found, ["empty-service"])
    found += doctor.diagnose(facts(table=[(svc("192.0.2.9"), [])]))[-3:]
    plain = report_lines(found, Out(width=20))
    assert len(plain) == len(found) + 1 and "\x1b" not in "".join(plain)
    assert plain[0] == "ok       IPVS 1.2.1 is loaded (connection hash table: 4096 buckets)"
    assert "note     TCP 192.0.2.1:80 has no real servers: its clients get no answer  " \
           "[empty-service, ignored]" in plain
    assert "problem  TCP 192.0.2.9:80 has no real servers: its clients get no answer  " \
           "[empty-service]" in plain
    assert plain[-1] == "doctor: 1 problem, 4 notes"
    coloured = report_lines(found, Out(width=20, color=True))
    assert coloured[0].startswith("\x1b[32mok\x1b[0m       IPVS 1.2.1")
    problem = next(x for x in coloured if x.startswith("\x1b[1;31mproblem\x1b[0m  TCP 192.0.2.9"))
    assert problem.endswith("  \x1b[2m[empty-service]\x1b[0m")
    assert coloured[-1] == "\x1b[1mdoctor: 1 problem, 4 notes\x1b[0m"


def test_the_new_subcommands_complete():
    """What the shell does: `ipvsctl do<TAB>`, `ipvsctl conns --su<TAB>`."""
    import os
    import subprocess
    import sys

    def complete(words: str, cword: int) -> list[str]:
        env = dict(os.environ, _IPVSCTL_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(cword))
        r = subprocess.run([sys.executable, "-c", "from ipvsctl.cli import main; main()"],
                           env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines()

    assert "plain,doctor" in complete("ipvsctl do", 1)
    assert {"plain,metrics", "plain,conns"} <= set(complete("ipvsctl ", 1))
    assert "plain,--summary" in complete("ipvsctl conns --su", 2)
    assert "plain,--listen" in complete("ipvsctl metrics --li", 2)
