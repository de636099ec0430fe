"""Aligned text tables for people, fitted to a width, in plain Python.

Strategy: the views (``ipvsctl list``, ``ipvsctl watch``) are tables of
short cells, and a table of ten thousand real servers must print in a
fraction of a second.  rich's general layout engine took seconds for that
(and cut addresses and numbers in two when narrow), so the views lay out
their own text here:

* ``Out`` says how text is written: the width, colour or not (ANSI SGR
  codes, as rich wrote them), and the box characters (ASCII when the
  output's encoding has no ``─``/``…``).
* ``fit`` chooses column widths in steps, each taken only when the previous
  one is not enough: the natural widths; then cells of the columns marked
  ``wrap`` (and any header) wrap between words; then the gap between
  columns closes to one cell; then whole columns are left out, the most
  dispensable first (``Column.drop``), and the caller says which; last,
  the widest remaining column is cut with an ellipsis.  An address, a port
  or a number is never split over two lines: it is shown whole, cut with a
  visible ``…``, or its column is left out.
* ``lines`` renders rows (tuples of str) with those widths.  A table that
  needs no wrapping (the usual case) is one ``%`` format per row; styled
  rows (colour) and wrapped cells take a slower path.
"""

from __future__ import annotations

import os

_SGR = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "magenta": "35",
        "cyan": "36"}
RESET = "\x1b[0m"


def sgr(style: str) -> str:
    return "\x1b[" + ";".join(_SGR[word] for word in style.split()) + "m"


class Out:
    """Where a view goes: ``width`` in cells, ``color`` (ANSI or not), and
    the ``rule`` and ``ellipsis`` characters the output's encoding can take."""

    __slots__ = ("width", "color", "rule", "ellipsis", "height")

    def __init__(self, width: int = 80, color: bool = False, unicode: bool = True,
                 height: int | None = None):
        self.width = width
        self.color = color
        self.rule = "─" if unicode else "-"
        self.ellipsis = "…" if unicode else "..."
        self.height = height  # lines on the screen; None off a terminal

    def paint(self, text: str, style: str | None) -> str:
        if not (self.color and style and text):
            return text
        return sgr(style) + text + RESET


def output_for(file, width: int | None = None, color: bool | None = None) -> Out:
    """An Out for ``file``, decided the way rich decided it.

    Colour: only on a terminal, never with ``color=False``, ``NO_COLOR`` or
    ``TERM=dumb``; always with ``color=True`` or ``FORCE_COLOR``.  Width:
    ``width``; else the terminal's; else ``$COLUMNS``; else 80.
    """
    try:
        tty = file.isatty()
    except (AttributeError, ValueError):
        tty = False
    env = os.environ
    if color is None:
        color = tty and "NO_COLOR" not in env and env.get("TERM") != "dumb"
        if env.get("FORCE_COLOR") and "NO_COLOR" not in env:
            color = True
    height = None
    if tty:
        try:
            size = os.get_terminal_size(file.fileno())
            height = size.lines
            if width is None:
                width = size.columns
        except (OSError, AttributeError, ValueError):
            pass
    if width is None:
        try:
            width = int(env.get("COLUMNS", ""))
        except ValueError:
            width = 80
    encoding = (getattr(file, "encoding", None) or "utf-8").lower().replace("_", "-")
    unicode = encoding.startswith("utf") or encoding in ("utf8",)
    return Out(width=max(width, 20), color=bool(color), unicode=unicode, height=height)


class Column:
    """A column: its title, right-aligned or not, may its cells wrap between
    words, and how early it is left out when the width is short (0: never;
    the highest number goes first)."""

    __slots__ = ("title", "right", "wrap", "drop")

    def __init__(self, title: str, right: bool = True, wrap: bool = False, drop: int = 0):
        self.title = title
        self.right = right
        self.wrap = wrap
        self.drop = drop


class Layout:
    """How a table of ``columns`` is drawn: which columns are shown
    (``keep``: indices), at which ``widths``, with which ``gap``;
    ``dropped``: the titles left out.  It makes its row format and header
    lines once: one layout serves every table that shares it."""

    __slots__ = ("columns", "keep", "widths", "gap", "dropped", "total", "_fmt", "_head")

    def __init__(self, columns, keep, widths, gap, dropped):
        self.columns = columns
        self.keep = keep
        self.widths = widths
        self.gap = gap
        self.dropped = dropped
        self.total = sum(widths) + gap * (len(widths) - 1)
        self._fmt = None
        self._head = None

    @property
    def fmt(self) -> str:
        """The %-format of one line of cells (of the kept columns)."""
        if self._fmt is None:
            cols = self.columns
            self._fmt = (" " * self.gap).join(
                f"%{w}s" if cols[k].right else f"%-{w}s" for k, w in zip(self.keep, self.widths))
        return self._fmt


def measure(columns, rows) -> list[int]:
    """The natural width of each column: its title or its widest cell."""
    if not rows:
        return [len(col.title) for col in columns]
    return [max(len(col.title), max(map(len, values)))
            for col, values in zip(columns, zip(*rows))]


def least(columns, rows) -> list[int]:
    """The least width of each column that breaks no word: a cell of a
    column that does not wrap counts whole; a title always may wrap
    between words."""
    out = []
    cells = list(zip(*rows)) if rows else [()] * len(columns)
    for col, values in zip(columns, cells):
        title_words = max(map(len, col.title.split()), default=0)
        if col.wrap:
            words = max((len(w) for v in set(values) for w in v.split()), default=0)
        else:
            words = max(map(len, values), default=0)
        out.append(max(title_words, words))
    return out


def fit(columns, natural, rows, width: int) -> Layout:
    """The widths that fit ``width`` (see the module's steps); ``natural``
    from measure(columns, rows)."""
    keep = list(range(len(columns)))
    if sum(natural) + 2 * (len(natural) - 1) <= width:
        return Layout(columns, keep, list(natural), 2, [])
    least_ = least(columns, rows)
    return _fit(columns, natural, least_, width)


def _fit(columns, natural, least, width: int) -> Layout:
    keep = list(range(len(columns)))
    dropped: list[str] = []
    while True:
        for gap in (2, 1):
            widths = _shrink([natural[k] for k in keep], [least[k] for k in keep], width, gap)
            if widths is not None:
                return Layout(columns, keep, widths, gap, dropped)
        candidates = [k for k in keep if columns[k].drop]
        if not candidates:
            break
        victim = max(candidates, key=lambda k: (columns[k].drop, k))
        keep.remove(victim)
        dropped.append(columns[victim].title)
    # Still too wide with only the columns that are never left out: cut the
    # widest, down to a few cells each (an ellipsis shows the cut).
    widths = [least[k] for k in keep]
    gap = 1
    while sum(widths) + gap * (len(widths) - 1) > width:
        i = max(range(len(widths)), key=lambda j: (widths[j], -j))
        if widths[i] <= 4:
            break
        widths[i] -= 1
    return Layout(columns, keep, widths, gap, dropped)


def _shrink(natural, least, width, gap):
    """Natural widths, narrowed towards ``least`` (the column with the most
    room above it first) until they fit; None when they cannot."""
    budget = width - gap * (len(natural) - 1)
    excess = sum(natural) - budget
    if excess <= 0:
        return list(natural)
    if sum(least) > budget:
        return None
    widths = list(natural)
    while excess > 0:
        i = max(range(len(widths)), key=lambda j: (widths[j] - least[j], j))
        widths[i] -= 1
        excess -= 1
    return widths


def wrap_words(text: str, width: int, ellipsis: str) -> list[str]:
    """``text`` in lines of at most ``width``, broken between words only;
    a word longer than ``width`` is cut with an ellipsis."""
    if len(text) <= width:
        return [text]
    lines: list[str] = []
    line = ""
    for word in text.split():
        if len(word) > width:
            word = cut(word, width, ellipsis)
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    lines.append(line)
    return lines


def cut(text: str, width: int, ellipsis: str) -> str:
    if len(text) <= width:
        return text
    keep = max(width - len(ellipsis), 0)
    return text[:keep] + ellipsis[:width - keep]


def header_lines(layout: Layout, out: Out) -> list[str]:
    """The titles (bold), wrapped between words where a column is narrow,
    aligned to the bottom as rich aligned them."""
    if layout._head is None or layout._head[0] is not out:
        columns = layout.columns
        cells = [[""] for _ in columns]
        for k, w in zip(layout.keep, layout.widths):
            cells[k] = wrap_words(columns[k].title, w, out.ellipsis)
        height = max(map(len, cells), default=1)
        rows = [tuple(([""] * (height - len(c)) + c)[i] for c in cells) for i in range(height)]
        layout._head = (out, [out.paint(line, "bold") for line in _plain_lines(layout, rows)])
    return layout._head[1]


def rule(layout: Layout, out: Out) -> str:
    return out.rule * layout.total


def _plain_lines(layout: Layout, rows):
    fmt = layout.fmt
    keep = layout.keep
    if len(keep) == len(layout.columns):
        return [(fmt % row).rstrip() for row in rows]
    return [(fmt % tuple(row[k] for k in keep)).rstrip() for row in rows]


def lines(layout: Layout, rows, out: Out, marks=None, natural=None):
    """The lines of ``rows`` (tuples of str, one per column).

    ``marks``: None, or a list parallel to ``rows`` of None or
    (row style, {column index: (style, word)}): the style of the whole row,
    and words to paint inside a cell ("draining").  ``natural``: the rows'
    widths from measure(), when known.
    """
    columns, keep, widths = layout.columns, layout.keep, layout.widths
    if natural is None:
        natural = measure(columns, rows)
    simple = all(widths[i] >= natural[k] for i, k in enumerate(keep))
    if simple and (marks is None or not out.color):
        return _plain_lines(layout, rows)
    fmt = layout.fmt
    sep = " " * layout.gap
    result = []
    for n, row in enumerate(rows):
        mark = marks[n] if marks is not None else None
        if simple:
            line_rows = [tuple(row[k] for k in keep)]
        else:
            cells = []
            for i, k in enumerate(keep):
                text, w = row[k], widths[i]
                if len(text) <= w:
                    cells.append([text])
                elif columns[k].wrap:
                    cells.append(wrap_words(text, w, out.ellipsis))
                else:
                    cells.append([cut(text, w, out.ellipsis)])
            height = max(map(len, cells))
            line_rows = [tuple(c[i] if i < len(c) else "" for c in cells) for i in range(height)]
        for cells in line_rows:
            if mark is None or not out.color:
                result.append((fmt % cells).rstrip())
                continue
            style, words = mark
            pieces = []
            for i, k in enumerate(keep):
                text = cells[i]
                padded = text.rjust(widths[i]) if columns[k].right else text.ljust(widths[i])
                spec = words.get(k) if words else None
                if spec and spec[1] in padded:
                    inner = sgr(spec[0]) + spec[1] + RESET + (sgr(style) if style else "")
                    padded = padded.replace(spec[1], inner, 1)
                pieces.append(padded)
            text = sep.join(pieces).rstrip()
            result.append(sgr(style) + text + RESET if style else text + RESET)
    return result


def heading(parts, out: Out) -> list[str]:
    """A heading made of parts, two spaces apart, wrapped between parts to
    the width.  A part is a list of (text, style) pieces written together
    ("TCP" bold, then the address bold cyan); a part wider than the width
    is cut, and loses its colours."""
    result: list[str] = []
    line, used = "", 0
    for part in parts:
        size = sum(len(text) for text, _ in part)
        if size > out.width:
            part = [(cut("".join(text for text, _ in part), out.width, out.ellipsis), None)]
            size = out.width
        if used and used + 2 + size > out.width:
            result.append(line)
            line, used = "", 0
        if used:
            line += "  "
            used += 2
        line += "".join(out.paint(text, style) for text, style in part)
        used += size
    if line or not result:
        result.append(line)
    return result


def write_lines(file, lines, chunk: int = 512) -> None:
    """Write ``lines`` with a newline after each, a chunk at a time: one
    string of a big table's whole text would cost a fresh page of memory
    per 4 KiB (~80 us each under User-Mode Linux)."""
    for i in range(0, len(lines), chunk):
        file.write("\n".join(lines[i:i + chunk]) + "\n")
