"""``ipvsctl conns`` for people: the connection list, the summary, the top.

Strategy: the look of ``ipvsctl list``, drawn by the same code
(render.layout, render.table): bold headers, one rule under them, two
blanks between columns, no frame, counts right-aligned, addresses always
numeric, the same colours (protocol bold, virtual address bold cyan,
totals bold), and the same fitting to the width: an address, a port or a
number is shown whole, cut with a visible ``…``, or its column is left out
and named at the end.

* The list can hold millions of entries, so it is streamed: the column
  widths come from the first ``MEASURED_ROWS`` rows (and the headers); a
  later, wider address still shows whole, pushing only its own row's
  columns right, as long as the row fits the width (else it is laid out in
  the columns' widths, cut where it must be).
* The summary and the top are small (bounded by the real servers, not by
  the connections): tables of render.table, one per service as in
  ``list``, with a total row.
"""

from __future__ import annotations

from itertools import chain, islice

from ipvsctl.render.layout import Column, Out, fit, header_lines, lines, measure, rule, write_lines
from ipvsctl.render.table import S_ADDR, S_PROTO, left_out, table_of, tables_lines

MEASURED_ROWS = 1000
CHUNK = 512
NO_CONNECTIONS = "no connections"

# Left out on a narrow screen: Expires first, then Proto, then State; the
# three addresses never.
LIST_COLUMNS = (Column("Proto", right=False, drop=2), Column("Client", right=False),
                Column("Virtual", right=False), Column("Real server", right=False),
                Column("State", right=False, drop=1), Column("Expires", drop=3))
LIST_HEADERS = tuple(c.title for c in LIST_COLUMNS)
_REAL_SERVER = Column("Real server", right=False)


def list_lines(rows, out: Out):
    """The lines of the connection list (rows: tuples of LIST_HEADERS'
    cells), produced as the rows come, a chunk at a time."""
    rows = iter(rows)
    first = list(islice(rows, MEASURED_ROWS))
    layout = fit(LIST_COLUMNS, measure(LIST_COLUMNS, first), first, out.width)
    yield header_lines(layout, out) + [rule(layout, out)]
    fmt, keep, width = layout.fmt, layout.keep, out.width
    whole = len(keep) == len(LIST_COLUMNS)
    chunks = chain([first[i:i + CHUNK] for i in range(0, len(first), CHUNK)],
                   iter(lambda: list(islice(rows, CHUNK)), []))
    for chunk in chunks:
        text = []
        for row in chunk:
            line = (fmt % (row if whole else tuple(row[k] for k in keep))).rstrip()
            text += lines(layout, [row], out) if len(line) > width else [line]
        yield text
    yield left_out(layout.dropped, out)


def stream_list(rows, file, out: Out) -> int:
    """Write the connection list to ``file``; return how many rows."""
    seen = 0

    def counted():
        nonlocal seen
        for row in rows:
            seen += 1
            yield row

    for piece in list_lines(counted(), out):
        write_lines(file, piece)
    return seen


def summary_lines(summary, out: Out) -> list[str]:
    """Per service: a heading (as in ``list``) and a table of its real
    servers by state, with the service's total row."""
    states = summary.states()
    # One tuple of columns for all services, so that their tables line up;
    # on a narrow screen the states late in a connection's life go first.
    columns = ((_REAL_SERVER,) + tuple(Column(s, drop=i + 1) for i, s in enumerate(states))
               + (Column("Total"),))
    tables = []
    for proto, virt, group, reals in summary.rows():
        n = group.total
        heading = [[(proto, S_PROTO), (" ", None), (virt.text, S_ADDR)],
                   [(f"{n} connection{'s' if n != 1 else ''}", None)]]
        rows = [(real.text,) + _counts(g, states) for real, g in reals]
        tables.append(table_of(heading, columns, rows, totals=("service total",) + _counts(group, states)))
    return tables_lines(tables, out, NO_CONNECTIONS)


def top_lines(summary, n: int, out: Out) -> list[str]:
    """The busiest real servers, over all services, one table."""
    ranked = summary.top(n)
    if not ranked:
        return tables_lines([], out, NO_CONNECTIONS)
    states = sorted({s for _, g in ranked for s in g.states}, key=summary_state_order)
    columns = ((Column("#"), _REAL_SERVER, Column("Connections"))
               + tuple(Column(s, drop=i + 1) for i, s in enumerate(states)))
    rows = [(str(i), real.text, str(g.total)) + tuple(str(g.states.get(s, 0)) for s in states)
            for i, (real, g) in enumerate(ranked, start=1)]
    return tables_lines([table_of(None, columns, rows)], out, NO_CONNECTIONS)


def _counts(group, states) -> tuple[str, ...]:
    get = group.states.get
    return tuple(str(get(s, 0)) for s in states) + (str(group.total),)


def summary_state_order(state: str):
    from ipvsctl.conns import _state_order

    return _state_order(state)
