"""ipvsadm's recorded outputs, replayed through ipvsctl's command path.

Every line of every golden file (tests/data/golden/, recorded from the real
ipvsadm 1.31 in a real kernel by tests/kernel/record_golden.py) runs through
``cli.run_compat`` against a kernel replayed from the recording
(support.golden.ReplayKernel): grammar, ops, backend, transport, codec and
renderers all run, and the exit status, stdout and stderr must be ipvsadm's,
byte for byte (less the differences docs/compat.md lists, derived from
ipvsadm's own text).  Change lines must also send requests that take the
recorded kernel state before the line to the state after it
(support.kernel_model, decoding with pyroute2).

So a change to any byte of ipvsadm-compatible output fails here, without
User-Mode Linux.  When behaviour changes on purpose, record again
(scripts/record-golden) and list the difference in docs/compat.md.
"""

from __future__ import annotations

import shlex

import pytest

from support.compat import comparable
from support.golden import Golden, golden_files, run_step
from support.kernel_model import check_change

GOLDENS = {path.stem: Golden.load(path) for path in golden_files()}

# Lines where ipvsctl is known to differ from ipvsadm today, each with the
# issue that will fix it (strict: the mark must go when the fix lands).
KNOWN: dict[tuple[str, str], str] = {}


def _cases():
    for name, g in GOLDENS.items():
        for i, step in enumerate(g.steps):
            line = shlex.join(step["argv"])
            marks = []
            if (name, line) in KNOWN:
                marks.append(pytest.mark.xfail(reason=KNOWN[(name, line)], strict=True))
            yield pytest.param(name, i, id=f"{name}:{i}:{line or '(none)'}", marks=marks)


CASES = list(_cases())


def test_there_are_golden_files():
    assert len(GOLDENS) >= 10, "tests/data/golden/ is missing: run scripts/record-golden"


@pytest.mark.parametrize("name,index", CASES)
def test_replayed_line_gives_ipvsadms_output(name, index):
    g = GOLDENS[name]
    step = g.steps[index]
    status, out, err, kernel = run_step(g, step)
    want, got = comparable(step["argv"], (step["status"], step["stdout"], step["stderr"]), (status, out, err))
    assert got == want
    if "errno" in step:
        check_change(g, step, kernel.changes)
