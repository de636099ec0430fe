"""Scenario 8: a million lines (issue 13, item 5), ipvsctl beside ipvsadm.

-R of services x real servers with the whole stream checked first, the
command's own peak RSS at most 250 MB (/usr/bin/time), the state the same
as ipvsadm's; then -Sn and -Ln of that table, streamed, peak RSS at most
250 MB and bytes identical to ipvsadm's.  Run by bench.py (``--only
million``); docs/performance.md has the numbers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness import Netns, Report, Row, Tools, alternate, fmt_t, log, restore_lines, spawn, write


def _sorted_lines(path: Path) -> list[bytes]:
    with open(path, "rb") as f:
        return sorted(f.read().splitlines())


def _digest(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def sc_million(t: Tools, rep: Report, p, a):
    """8. A million lines (issue 13, item 5): -R of services x dests with
    the whole stream checked first, ipvsctl's own peak RSS <= 250 MB, the
    state the same as ipvsadm's; then -Sn and -Ln of that table, streamed,
    peak RSS <= 250 MB and bytes identical to ipvsadm's.

    ipvsadm -R of the whole stream takes ~5 minutes under UML; with
    ``--set million_adm_services=N`` (N < million_services) it runs on the
    first N services only, beside ipvsctl on the same part (states
    compared), its time for the whole is that part's scaled, and the row
    says so; the whole stream's state is then compared line by line with
    the input (every line is one ipvsadm accepts: -Sn prints them back)."""
    svcs, dests = p["million_services"], p["million_dests"]
    part = min(p["million_adm_services"], svcs)
    n, m = svcs * (1 + dests), part * (1 + dests)
    src = write(t.work / "million.txt", restore_lines(svcs, dests))
    sub = src if part == svcs else write(t.work / "million-part.txt", restore_lines(part, dests))
    times, states = {}, {}
    for tool in ("adm", "ctl"):
        with Netns(t):
            r = t.run(tool, ["-R"], stdin=sub, rss=tool == "ctl" and part == svcs)
            assert r.status == 0, r.text()[-300:]
            times[tool] = r.wall
            states[tool] = t.saved_state()
            log(f"  -R of {m} lines, {tool}: {fmt_t(r.wall)}")
            if tool == "ctl":
                whole = r
    what = f"-R {part} svc x {dests} dests ({m} lines)"
    if part < svcs:
        rep.row(Row("8 million", what + ", the part ipvsadm runs", [times["adm"]], [times["ctl"]],
                    target="(info)").judge())
    rep.check("8 million", f"state after -R identical (ipvsadm -Sn sha256, {m} lines)",
              states["adm"] == states["ctl"] and states["adm"][1] == m,
              f"ipvsadm {states['adm'][0][:12]} ({states['adm'][1]}), "
              f"ipvsctl {states['ctl'][0][:12]} ({states['ctl'][1]})")
    with Netns(t):
        if part < svcs:
            whole = t.run("ctl", ["-R"], stdin=src, rss=True)
            saved = t.work / "million.sn"
            st = spawn(t.adm + ["-Sn"], out=saved)
            rep.check("8 million", f"the state after ipvsctl -R is the input, line for line "
                      f"(ipvsadm -Sn, {n} lines)",
                      st.status == 0 and _sorted_lines(saved) == _sorted_lines(src),
                      f"ipvsadm -Sn status {st.status}")
            saved.unlink()
            scale = svcs / part
            rep.row(Row("8 million", f"-R {svcs} svc x {dests} dests ({n} lines; ipvsadm: {scale:g} x "
                        f"its time for {part} services, extrapolated)", [times["adm"] * scale],
                        [whole.wall], target="(info)").judge())
        else:
            t.load(src, "ctl")  # the table again, for the listings (untimed)
            rep.row(Row("8 million", what, [times["adm"]], [times["ctl"]], target="(info)").judge())
        peak = whole.maxrss_kb / 1024
        log(f"  ipvsctl -R of {n} lines: {fmt_t(whole.wall)}, rc {whole.status}, peak RSS {peak:.0f} MB")
        rep.rows.append(Row("8 million", f"ipvsctl -R of {n} lines: peak RSS {peak:.0f} MB "
                            "(/usr/bin/time %M)", target="<= 250 MB",
                            verdict="PASS" if peak <= 250 and whole.status == 0 else "FAIL",
                            note=f"exit status {whole.status}; {peak / n * 1024 * 1024:.0f} bytes a line"))
        for flag in ("-Sn", "-Ln"):
            walls = {"adm": [], "ctl": []}
            digests = {"adm": set(), "ctl": set()}
            rss = []
            for i in range(a.runs):
                for tool in alternate(i):
                    r = t.run(tool, [flag], keep=True, rss=tool == "ctl")
                    walls[tool].append(r.wall)
                    digests[tool].add((r.status, *_digest(r.out)))
                    r.out.unlink()
                    if tool == "ctl":
                        rss.append(r.maxrss_kb)
            peak = max(rss) / 1024
            rep.row(Row("8 million", f"{flag} of {n} entries", walls["adm"], walls["ctl"],
                        target="(info)").judge())
            same = len(digests["adm"]) == 1 and digests["adm"] == digests["ctl"]
            status, _, size = next(iter(digests["ctl"]))
            rep.rows.append(Row("8 million", f"ipvsctl {flag} of {n} entries: peak RSS {peak:.0f} MB "
                                "(/usr/bin/time %M)", target="<= 250 MB",
                                verdict="PASS" if peak <= 250 and status == 0 else "FAIL",
                                note=f"{size / 1e6:.0f} MB written; max of {len(rss)} runs"))
            rep.check("8 million", f"{flag} of {n} entries byte-identical to ipvsadm's (every run)",
                      same and status == 0, f"{size} bytes" if same
                      else f"ipvsadm {sorted(digests['adm'])}, ipvsctl {sorted(digests['ctl'])}")
