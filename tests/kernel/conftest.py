"""Fixtures of the kernel tier: tests against a real kernel's IPVS.

These tests need a kernel with IPVS and root.  scripts/test runs the suite
inside User-Mode Linux (scripts/uml-run) where both hold; see docs/testing.md.
Without IPVS every kernel test fails (never skips): a tier that quietly
skipped would hide exactly the bugs it exists to catch.

Isolation: each test gets fresh network namespaces, hence empty IPVS tables
of its own; the root namespace's table is checked untouched at session end.
"""

from __future__ import annotations

import os

import pytest

from nsutil import NetNS, delete_many, ipvs_available, root_ipvs_table, run_ipvsadm, run_ipvsctl  # noqa: F401
from topology import Topology

NO_IPVS = "kernel tests need IPVS: run them with scripts/test (User-Mode Linux)"


@pytest.fixture(scope="session", autouse=True)
def _kernel_guard():
    """Fail (not skip) without IPVS; leave the root namespace's table as found."""
    if not ipvs_available():
        pytest.fail(NO_IPVS, pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("kernel tests need root (network namespaces, IPVS)", pytrace=False)
    before = root_ipvs_table()
    if os.environ.get("IPVSCTL_UML") == "1":
        assert before == [], f"the guest's root IPVS table is not empty at start: {before}"
    yield
    after = root_ipvs_table()
    assert after == before, (
        "a test changed the ROOT namespace's IPVS table (tests must work in their own "
        f"namespaces): before={before} after={after}"
    )


@pytest.fixture
def netns():
    """A fresh network namespace, loopback up, deleted afterwards.

    ``.name``, ``.path``, ``.run(argv, input=None, check=False)``, ``.enter()``.
    """
    (ns,) = NetNS.create_many(["ns"])
    yield ns
    delete_many([ns])


@pytest.fixture
def netns_pair():
    """Two fresh namespaces, e.g. real ipvsadm in one and ipvsctl in the other."""
    pair = NetNS.create_many(["a", "b"])
    yield tuple(pair)
    delete_many(pair)


@pytest.fixture
def traffic_topology():
    """Client -> director (IPVS, VIP) -> 3 HTTP backends; see topology.py."""
    with Topology(backends=3) as topo:
        yield topo
