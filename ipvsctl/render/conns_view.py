"""``ipvsctl conns`` for people: the connection list, the summary, the top.

Strategy: the look of ``ipvsctl list`` (render.table): bold headers, one
rule under them, two blanks between columns, no frame, counts right-aligned,
addresses always numeric.

* The list can hold millions of entries, so it is not a rich Table (which
  measures every row before drawing): it is streamed.  The column widths
  come from the first ``MEASURED_ROWS`` rows (and the headers); a later,
  wider address still shows whole, it only pushes its row's columns right.
* The summary and the top are small (bounded by the real servers, not by
  the connections): rich tables, one per service as in ``list``, with a
  total row.
"""

from __future__ import annotations

from itertools import chain, islice

MEASURED_ROWS = 1000
LIST_HEADERS = ("Proto", "Client", "Virtual", "Real server", "State", "Expires")
_RIGHT = {"Expires"}
GAP = "  "


def _rule_char(file) -> str:
    enc = (getattr(file, "encoding", None) or "").lower().replace("-", "")
    return "─" if enc in ("utf8", "utf_8") else "-"


def stream_list(rows, out, bold: bool = False) -> int:
    """Write the rows (tuples of LIST_HEADERS' cells) as a table; return how many."""
    rows = iter(rows)
    first = list(islice(rows, MEASURED_ROWS))
    widths = [max([len(h)] + [len(r[i]) for r in first]) for i, h in enumerate(LIST_HEADERS)]

    def line(cells) -> str:
        parts = [c.rjust(w) if h in _RIGHT else c.ljust(w)
                 for c, w, h in zip(cells, widths, LIST_HEADERS)]
        return GAP.join(parts).rstrip() + "\n"

    head = line(LIST_HEADERS)
    if bold:
        head = "\x1b[1m" + head.rstrip("\n") + "\x1b[0m\n"
    out.write(head)
    out.write(_rule_char(out) * (sum(widths) + len(GAP) * (len(widths) - 1)) + "\n")
    n = 0
    buf = []
    for r in chain(first, rows):
        buf.append(line(r))
        n += 1
        if len(buf) >= 512:
            out.write("".join(buf))
            buf.clear()
    out.write("".join(buf))
    return n


def _state_columns(states: list[str]) -> list[str]:
    return states + ["Total"]


def summary_view(summary, no_entries_text: str = "no connections"):
    """Per service: a heading (as in ``list``) and a table of its real servers
    by state, with the service's total row."""
    from rich.console import Group as RichGroup
    from rich.table import Table
    from rich.text import Text

    from ipvsctl.render.table import PROTO_LABELS, S_ADDR, S_PROTO, S_TOTAL, _box

    states = summary.states()
    parts = []
    protocols = {v: k for k, v in PROTO_LABELS.items()}
    for i, (proto, virt, group, reals) in enumerate(summary.rows()):
        if i:
            parts.append(Text(""))
        heading = Text()
        heading.append(PROTO_LABELS.get(protocols.get(proto), proto), S_PROTO)
        heading.append(" ")
        heading.append(virt.text, S_ADDR)
        heading.append(f"  {group.total} connection{'s' if group.total != 1 else ''}")
        parts.append(heading)
        table = Table(box=_box(), show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),
                      header_style="bold", show_footer=True, expand=False)
        table.add_column("Real server", footer=Text("service total", S_TOTAL))
        for col in _state_columns(states):
            total = group.total if col == "Total" else group.states.get(col, 0)
            table.add_column(col, justify="right", footer=Text(str(total), S_TOTAL))
        for real, g in reals:
            table.add_row(real.text, *[str(g.total if c == "Total" else g.states.get(c, 0))
                                       for c in _state_columns(states)])
        parts.append(table)
    if not parts:
        parts.append(Text(no_entries_text, "dim"))
    return RichGroup(*parts)


def top_view(summary, n: int):
    """The busiest real servers, over all services, one table."""
    from rich.table import Table
    from rich.text import Text

    from ipvsctl.render.table import _box

    ranked = summary.top(n)
    if not ranked:
        return Text("no connections", "dim")
    states = sorted({s for _, g in ranked for s in g.states}, key=summary_state_order)
    table = Table(box=_box(), show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),
                  header_style="bold", expand=False)
    table.add_column("#", justify="right")
    table.add_column("Real server")
    table.add_column("Connections", justify="right")
    for s in states:
        table.add_column(s, justify="right")
    for i, (real, g) in enumerate(ranked, start=1):
        table.add_row(str(i), real.text, str(g.total), *[str(g.states.get(s, 0)) for s in states])
    return table


def summary_state_order(state: str):
    from ipvsctl.conns import _state_order

    return _state_order(state)
