"""Whole-stream planning (ipvsctl/restore_stream.py, restore.plan_chunks)
against the per-line path (restore.plan: fastline, then the grammar): the
same bytes held, the same line numbers and operations, the same services
kept for the name check, the same error for the same line, wherever the
chunks cut the text."""

from __future__ import annotations

import gc
import random
import subprocess
import sys

import pytest
from test_fastline import CORPUS, SERVERS, SERVICES

from ipvsctl import backend as b
from ipvsctl import restore, restore_stream
from ipvsctl.netlink.backend import EncodedBatch
from ipvsctl.restore import RestoreLineError, plan, plan_chunks

# The shapes ipvsadm -S writes, and near misses of them.
SAVED = [
    "-A -t 10.0.0.1:80 -s rr", "-A -u 10.0.0.2:53 -s wlc -p 300", "-A -t 10.0.0.3:443 -s sh -p 2678400",
    "-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 1", "-a -t 10.0.0.1:80 -r 10.1.0.2:8081 -g -w 0",
    "-a -u 10.0.0.2:53 -r 10.1.0.3:53 -i -w 2147483647", "-a -t 10.0.0.3:443 -r 10.1.0.4:65535 -m -w 5",
    "-a -t 10.0.0.1:80 -r 10.1.0.05:80 -m -w 1", "-a -t 10.0.0.1:80 -r 1.2.3.4:80 -m -w 1 ",
    "-a -t 10.0.0.1:80  -r 10.1.0.6:80 -m -w 1", "-a -t 10.0.0.1:80 -r 10.1.0.7:80 -m -w 1\r",
    "-a -t 010.0.0.1:80 -r 10.1.0.8:80 -m -w 1", "-A -t 10.0.0.4:80 -s averyveryverylong",
    "-A -t 10.0.0.5:80 -s rr -p", "-a -t 10.0.0.1:80 -r 10.1.0.9 -m -w 1", "ipvsadm -A -t 10.0.0.6:80",
    "-a -t 10.0.0.1:80 -r 10.1.0.10:80 -m -w 1 -x 5", "-a -t 10.0.0.1:80 -r 10.1.0.11:80 -m -w 01",
    "# a comment", "", "   ", "-E -t 10.0.0.1:80 -s wrr", "-d -t 10.0.0.1:80 -r 10.1.0.1:8080",
]
BAD = [
    "-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 2147483648", "-a -t 10.0.0.1:80 -r 10.1.0.1:65536 -m -w 1",
    "-a -t 10.0.0.1:80 -r 10.1.0.256:80 -m -w 1", "-a -t 10.0.0.1:99999 -r 10.1.0.1:80 -m -w 1",
    "-A -t 10.0.0.1:80 -s rr -p 2678401", "-A -t 10.0.0.1:0 -s rr", "-A -t 10.0.0.1:80 -s rr -s wlc",
    "-R", "-x", "{", "-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w x",
    # digits of other scripts (int() reads them; ipvsadm does not)
    "-a -t 10.0.0.1:80 -r 10.1.0.1:8\u0660 -m -w 1", "-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1\u0660",
    "-A -t 10.0.0.1:80 -s rr -p 3\u0660\u0660", "-a -t 10.0.0.1:8\u0660 -r 10.1.0.1:80 -m -w 1",
    "-a -t 10.0.0.1:80 -r 10.1.0.1\u0660:80 -m -w 1",
]


def _corpus() -> list[str]:
    lines = [f.format(s=s, r=r) for f in CORPUS for s in SERVICES[:4] for r in SERVERS[:4]]
    return SAVED + lines


def _accepted(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        try:
            plan([line])
        except RestoreLineError:
            continue
        out.append(line)
    return out


def _chunks(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _held(p) -> tuple:
    batch = p.batch
    data = (bytes(batch.data), list(batch.ends)) if isinstance(batch, EncodedBatch) else batch.requests
    return data, list(p.lines), bytes(p.ops), p.commands, p.located(), [(i, n) for i, n, _ in p.listings]


@pytest.mark.parametrize("size", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("flush", [False, True])
@pytest.mark.parametrize("encoded", [True, False])  # False: a batch of Requests, line by line
@pytest.mark.parametrize("block", [20, 1000, restore_stream.BLOCK])
def test_the_whole_stream_holds_what_line_by_line_holds(size, flush, encoded, block, monkeypatch):
    monkeypatch.setattr(restore_stream, "BLOCK", block)
    lines = _accepted(_corpus())
    random.Random(size).shuffle(lines)
    text = "\n".join(lines)
    make = EncodedBatch.unsent if encoded else b.Batch
    want = _held(plan(text.split("\n"), make(), flush=flush))
    assert _held(plan_chunks(_chunks(text, size), make(), flush=flush)) == want
    assert want[3] > 200  # the corpus is not empty
    # the same with a last line ending in "\n" and a last line of spaces
    for tail in ("\n", "\n  "):
        want = _held(plan((text + tail).split("\n"), make(), flush=flush))
        assert _held(plan_chunks(_chunks(text + tail, size), make(), flush=flush)) == want


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("size", [5, 1 << 20])
def test_a_bad_line_is_named_as_line_by_line_names_it(bad, size):
    good = _accepted(SAVED)
    for before in (0, 3, len(good)):
        lines = good[:before] + [bad] + good[before:]
        text = "\n".join(lines)
        with pytest.raises(RestoreLineError) as want:
            plan(text.split("\n"), EncodedBatch.unsent())
        with pytest.raises(RestoreLineError) as got:
            plan_chunks(_chunks(text, size), EncodedBatch.unsent())
        w, g = want.value, got.value
        assert (g.line_no, g.error.message, g.error.exit_code, g.error.try_help, g.first, g.line) == \
            (w.line_no, w.error.message, w.error.exit_code, w.error.try_help, w.first, w.line)


def test_the_saved_shapes_never_reach_the_per_line_path(monkeypatch):
    seen = []
    real = restore._Planner.line
    monkeypatch.setattr(restore._Planner, "line", lambda self, n, line: (seen.append(line), real(self, n, line)))
    text = "\n".join(SAVED[:7]) + "\n"
    p = plan_chunks([text], EncodedBatch.unsent())
    assert seen == [] and p.commands == 7
    plan_chunks([text + SAVED[8]], EncodedBatch.unsent())
    assert seen == [SAVED[8]]  # a near miss (a trailing space) goes the general way


def test_the_collector_runs_again_afterwards_even_after_an_error():
    assert gc.isenabled()
    plan_chunks(["-A -t 10.0.0.1:80 -s rr\n"])
    assert gc.isenabled()
    with pytest.raises(RestoreLineError):
        plan_chunks(["-A -t 10.0.0.1:80 -s rr\n-x\n"])
    assert gc.isenabled()
    gc.disable()
    try:
        plan_chunks(["-A -t 10.0.0.1:80 -s rr\n"])
        assert not gc.isenabled()  # left as it was
    finally:
        gc.enable()


def test_planning_imports_nothing_once_restore_is_imported():
    """-R and `restore` install a raising interrupt.Guard before planning; a
    signal that lands inside an import (importlib's lock callbacks) is printed
    as "Exception ignored in ..." with a traceback, and swallowed.  So every
    module planning uses is imported with ipvsctl.restore, before the Guard."""
    code = (
        "import sys\n"
        "from ipvsctl import restore\n"
        "from ipvsctl.netlink.backend import EncodedBatch\n"
        "before = set(sys.modules)\n"
        f"restore.plan_chunks([{STREAM!r}], EncodedBatch.unsent())\n"
        "restore.plan_chunks([], None)\n"
        "print(sorted(set(sys.modules) - before))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


STREAM = ("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1\n-E -t 10.0.0.1:80 -s wrr\n"
          "-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1 -x 5\n# c\n-A -u 10.0.0.2:53 -s wlc -p\n-C\n"
          "--set 1 2 3\n-d -t 10.0.0.1:80 -r 10.1.0.2:80\n")
