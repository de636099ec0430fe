"""The kernel tier itself: real IPVS, one table per namespace, setns works."""

import os

from nsutil import run_ipvsadm


def _services(ns) -> list[str]:
    r = run_ipvsadm(ns, "-Ln")
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines()[3:] if line.strip()]


def test_ipvsadm_adds_and_lists_a_service_in_a_fresh_namespace(netns):
    assert _services(netns) == []
    r = run_ipvsadm(netns, "-A", "-t", "198.18.0.10:80", "-s", "rr")
    assert r.returncode == 0, r.stderr
    r = run_ipvsadm(netns, "-a", "-t", "198.18.0.10:80", "-r", "198.18.1.2:80", "-m")
    assert r.returncode == 0, r.stderr
    lines = _services(netns)
    assert lines[0].split() == ["TCP", "198.18.0.10:80", "rr"]
    assert lines[1].split()[:3] == ["->", "198.18.1.2:80", "Masq"]


def test_namespaces_have_separate_tables(netns_pair):
    a, b = netns_pair
    assert run_ipvsadm(a, "-A", "-u", "198.18.0.53:53").returncode == 0
    assert len(_services(a)) == 1
    assert _services(b) == []


def test_enter_switches_the_thread_namespace_and_back(netns):
    def current():
        return os.readlink("/proc/thread-self/ns/net")

    outside = current()
    with netns.enter():
        inside = current()
        # /proc/thread-self/net follows the thread: IPVS of this namespace.
        with open("/proc/thread-self/net/ip_vs") as f:
            assert len(f.read().splitlines()) == 3  # headers only
    assert inside == f"net:[{os.stat(netns.path).st_ino}]"
    assert inside != outside
    assert current() == outside


def test_run_executes_inside_the_namespace(netns):
    r = netns.run(["readlink", "/proc/self/ns/net"], check=True)
    assert r.stdout.strip() == f"net:[{os.stat(netns.path).st_ino}]"
    assert netns.run(["cat"], input="piped\n").stdout == "piped\n"


def test_kernel_has_every_scheduler():
    with open("/proc/modules") as f:
        loaded = {line.split()[0] for line in f}
    for sched in "rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh".split():
        assert f"ip_vs_{sched}" in loaded or not os.environ.get("IPVSCTL_UML"), sched
