"""Run the same command lines through real ipvsadm and through ipvsctl.

The oracle is the real ipvsadm 1.31 in one fresh namespace; ipvsctl works in
another.  For every line we compare exit status, stdout and stderr; after a
scenario we compare the two kernel tables as the real ipvsadm reads them back
(so a difference in kernel state shows even where both tools print nothing).

ipvsctl runs in-process (``run_compat`` inside the namespace) because a
Python process costs ~100 ms to start under User-Mode Linux; the CLI's own
entry point is covered by tests that spawn it.  It is given the program name
"ipvsadm" so that usage hints ("Try `ipvsadm -h' ...") name the same program.
"""

from __future__ import annotations

import io
import shlex
from dataclasses import dataclass

from nsutil import NetNS, run_ipvsadm
from support.compat import is_save, unsigned_fwmarks, without_saved_thresholds

from ipvsctl.cli import run_compat

# What the real ipvsadm reads back from a table: every view of kernel state.
STATE_VIEWS = (
    ["-Sn"],
    ["-Ln"],
    ["-Ln", "--thresholds"],
    ["-Ln", "--persistent-conn"],
    ["-Ln", "--tun-info"],
    ["-Ln", "--timeout"],
    ["-Ln", "--daemon"],
)


@dataclass(frozen=True)
class Result:
    status: int
    out: str
    err: str


def ipvsadm(ns: NetNS, args, input: str | None = None) -> Result:
    r = run_ipvsadm(ns, *args, input=input)
    return Result(r.returncode, r.stdout, r.stderr)


def ipvsctl(ns: NetNS, args, input: str | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with ns.enter():
        status = run_compat(list(args), io.StringIO(input or ""), out, err, prog="ipvsadm")
    return Result(status, out.getvalue(), err.getvalue())


def split(line: str) -> list[str]:
    return shlex.split(line)


def expected_from(ipvsadm_result: Result) -> Result:
    """What ipvsctl should print where ipvsadm 1.31 is wrong on purpose
    (docs/compat.md): marks of 2^31 and above print unsigned."""
    r = ipvsadm_result
    return Result(r.status, unsigned_fwmarks(r.out), r.err)


def _differs(args, want: Result, got: Result) -> bool:
    if is_save(args):
        got = Result(got.status, without_saved_thresholds(got.out), got.err)
    return expected_from(want) != got


def compare_lines(ns_ref: NetNS, ns_ours: NetNS, lines) -> list[str]:
    """Run each line through both tools; return a list of mismatch reports."""
    problems = []
    for line in lines:
        args = split(line) if isinstance(line, str) else list(line)
        want = ipvsadm(ns_ref, args)
        got = ipvsctl(ns_ours, args)
        if _differs(args, want, got):
            problems.append(f"$ ipvsadm {' '.join(args)}\n--- ipvsadm\n{want}\n--- ipvsctl\n{got}")
    return problems


def _blocks(text: str) -> list[str]:
    """A listing as a sorted list of its entries: each service line with its
    real-server lines (each -S line stands alone).  The listing order of two
    namespaces can differ honestly: ipvsadm's comparator is not a total order
    when fwmarks or addresses are 2^31 apart, and the kernel's order differs
    per namespace.  Order itself is checked within one namespace
    (compare_views)."""
    blocks: list[str] = []
    for line in text.splitlines():
        if line.startswith("  ->") and blocks and not line.startswith("  -> RemoteAddress"):
            blocks[-1] += "\n" + line
        else:
            blocks.append(line)
    head = [b for b in blocks if b.startswith(("IP Virtual", "Prot ", "  -> RemoteAddress"))]
    return head + sorted(b for b in blocks if b not in head)


def compare_state(ns_ref: NetNS, ns_ours: NetNS, views=STATE_VIEWS) -> list[str]:
    """Kernel state of both namespaces, read by the real ipvsadm."""
    problems = []
    for view in views:
        want = ipvsadm(ns_ref, view)
        got = ipvsadm(ns_ours, view)
        if (want.status, _blocks(want.out), want.err) != (got.status, _blocks(got.out), got.err):
            problems.append(f"state view {' '.join(view)} differs:\n--- ipvsadm's table\n"
                            f"{want.out}{want.err}\n--- ipvsctl's table\n{got.out}{got.err}")
    return problems


def compare_views(ns: NetNS, views) -> list[str]:
    """ipvsctl's and ipvsadm's listings of the same table.

    Same namespace for both: the kernel's own order (--nosort) and the
    counters differ from one namespace to another.
    """
    return compare_lines(ns, ns, views)
