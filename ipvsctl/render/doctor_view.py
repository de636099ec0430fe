"""``ipvsctl doctor`` for people: one line per finding, then the count.

Strategy: each finding stays one line, never wrapped, so that it can be
found with grep and read by a script as well as by a person; the words
carry the meaning (ok, note, problem, the id in brackets), and the colours
of render.layout (as ``ipvsctl list`` uses them) only repeat it.
"""

from __future__ import annotations

from ipvsctl.render.layout import Out

STYLES = {"ok": "green", "note": "yellow", "problem": "bold red"}
STATUS_WIDTH = 9  # "problem" and two blanks


def report_lines(findings, out: Out) -> list[str]:
    """The report of ``findings`` (ipvsctl.doctor.Finding), as lines."""
    result = []
    for x in findings:
        line = out.paint(x.status, STYLES[x.status]) + " " * (STATUS_WIDTH - len(x.status)) + x.message
        if x.status == "problem" or x.ignored:
            line += "  " + out.paint(f"[{x.id}{', ignored' if x.ignored else ''}]", "dim")
        result.append(line)
    problems = sum(1 for x in findings if x.status == "problem")
    notes = sum(1 for x in findings if x.status == "note")
    result.append(out.paint(f"doctor: {problems} problem{'s' if problems != 1 else ''}, "
                            f"{notes} note{'s' if notes != 1 else ''}", "bold" if problems else None))
    return result
