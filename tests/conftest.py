"""Suite-wide pytest hooks.

Kernel tier bookkeeping: everything under tests/kernel/ is marked ``kernel``
(the marker is declared in pyproject.toml), and the outcomes of those tests
are written to .uml/kernel-tier.json at the end of the session, under the
running kernel's release (scripts/test runs the suite once per kernel; each
run replaces its own kernel's record and keeps the others).  .ci/run reads
that file and fails the build when any proven kernel's tier ran no test or
skipped one: a kernel tier that silently did not run would let real-kernel
bugs land.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pytest

KERNEL_DIR = Path(__file__).parent / "kernel"
_outcomes: dict[str, str] = {}  # nodeid -> passed / failed / skipped / xfailed / xpassed


def _is_kernel_test(item_or_report) -> bool:
    return "kernel" in getattr(item_or_report, "keywords", {})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if KERNEL_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.kernel)


def pytest_runtest_logreport(report):
    if not _is_kernel_test(report):
        return
    nodeid, previous = report.nodeid, _outcomes.get(report.nodeid)
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    elif report.skipped:
        outcome = "skipped"
    elif report.failed:
        outcome = "failed"  # setup and teardown errors count as failures here
    elif report.when == "call":
        outcome = "passed"
    else:
        return  # a passing setup or teardown says nothing new
    # A failure in teardown overrides the call's pass; nothing overrides a failure.
    if previous != "failed":
        _outcomes[nodeid] = outcome


def pytest_sessionfinish(session, exitstatus):
    path = Path(
        os.environ.get("IPVSCTL_KERNEL_TIER_FILE")
        or session.config.rootpath / ".uml" / "kernel-tier.json"
    )
    counts = {k: 0 for k in ("passed", "failed", "skipped", "xfailed", "xpassed")}
    for outcome in _outcomes.values():
        counts[outcome] += 1
    summary = {
        **counts,
        "total": len(_outcomes),
        "kernel": platform.release(),
        "uml": os.environ.get("IPVSCTL_UML") == "1",
        "exitstatus": int(exitstatus),
    }
    if not _outcomes and not summary["uml"]:
        return  # e.g. the unit tier on the host: nothing to say about any kernel
    try:
        record = json.loads(path.read_text())
        kernels = record["kernels"] if isinstance(record.get("kernels"), dict) else {}
    except (OSError, ValueError, AttributeError):
        kernels = {}
    kernels[summary["kernel"]] = summary
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"kernels": kernels}, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only checkout: the record is for .ci/run only
