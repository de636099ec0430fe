"""``ipvsctl watch``: connection and byte rates, live, busiest first.

Strategy: read the whole table (``Backend.table()``, one consistent read)
every interval and show, per service and per real server, the kernel's own
rate estimates (new connections, packets and bytes per second: what
``ipvsadm -Ln --rate`` shows), busiest first.  The drawing (``frame_lines``)
is a pure function of the rates, so tests feed it fixed tables; ``run`` owns
the clock, the reads and the terminal.

Why the kernel's estimates and not differences of the exact counters
between two reads: the kernel folds its per-CPU counters into the totals a
program can read only on its estimator tick (every 2 s), so the difference
of two reads taken ``interval`` apart holds 0, 1 or 2 ticks' worth of
traffic depending on where the ticks fall: a steady 40 connections/s shows
as 0, 40 or 80.  The estimator is computed on the tick itself and is
smoothed over a few seconds, so it is steady, and it costs no second sample
(the first frame shows at once).

Big tables: a frame is laid out as plain text (ipvsctl.render.layout), and
on a terminal only the rows that fit the screen are laid out at all (the
busiest; a last line says how many more there are).  A frame that takes
longer than the interval says so in its heading.

On a terminal the frame is redrawn in place: the cursor moves back up over
the previous frame, which is then overwritten (no alternate screen, so it
works over SSH in any VT100-ish terminal and the last frame stays on screen
after Ctrl-C).  Off a terminal (a pipe, a test, ``--once``) each frame is
printed after the previous one, whole.
"""

from __future__ import annotations

import time

from ipvsctl import model as m

DEFAULT_INTERVAL = 2.0


class Rates:
    """Rates of one service or real server: (cps, inpps, outpps, inbps,
    outbps), and its active and inactive connections."""

    __slots__ = ("values", "active", "inactive")

    def __init__(self, values: tuple[int, ...], active: int = 0, inactive: int = 0):
        self.values = values
        self.active = active
        self.inactive = inactive

    @property
    def sort_key(self) -> tuple:
        return (self.values[0], self.values[3] + self.values[4])


class ServiceRates:
    __slots__ = ("service", "rates", "dests")

    def __init__(self, service: m.Service, rates: Rates, dests=None):
        self.service = service
        self.rates = rates
        self.dests: list[tuple[m.Destination, Rates]] = dests if dests is not None else []


_IDLE = (0, 0, 0, 0, 0)


def _estimates(st: m.Stats | None) -> tuple[int, ...]:
    if st is None:
        return _IDLE
    return (st.cps, st.inpps, st.outpps, st.inbps, st.outbps)


def _busiest(values: tuple[int, ...]) -> tuple[int, int]:
    return (values[0], values[3] + values[4])


def rates(table) -> list[ServiceRates]:
    """Rates of every service and real server of ``table``, busiest first.

    Sorted by new connections per second, then bytes per second (in + out);
    ties keep the table's order (ipvsadm's, as read).
    """
    out = []
    for svc, dests in table:
        pairs = [(d, Rates(_estimates(d.stats), d.active_conns, d.inact_conns)) for d in dests]
        pairs.sort(key=lambda dr: _busiest(dr[1].values), reverse=True)
        active = sum(r.active for _, r in pairs)
        inactive = sum(r.inactive for _, r in pairs)
        out.append(ServiceRates(svc, Rates(_estimates(svc.stats), active, inactive), pairs))
    out.sort(key=lambda s: _busiest(s.rates.values), reverse=True)
    return out


def _columns():
    from ipvsctl.render.layout import Column

    # Packets are in the rates too, but left out to keep the frame to 80
    # columns; on a narrow screen the least needed columns go first.
    return (Column("Service / real server", right=False), Column("Conn/s"),
            Column("In B/s", drop=2), Column("Out B/s", drop=3), Column("Active", drop=5),
            Column("Inact", drop=6), Column("Weight", wrap=True, drop=4))


def _body(rows: list[ServiceRates], limit: int | None):
    """(cells, marks, shown, total): the rows of the frame (at most ``limit``),
    their styles, how many real rows were shown and how many there are."""
    from ipvsctl.labels import host_port, service_label
    from ipvsctl.render.table import DRAINING, NO_SERVERS, S_ADDR, S_DRAIN, S_DRAIN_ROW, S_WARN, human

    cells: list[tuple[str, ...]] = []
    marks: list = []
    total = sum(1 + max(len(sr.dests), 1) for sr in rows)  # rows, blank lines not counted
    blank = ("",) * 7
    for i, sr in enumerate(rows):
        if limit is not None and len(cells) >= limit:
            break
        if i:
            cells.append(blank)
            marks.append(None)
        v, r = sr.rates.values, sr.rates
        cells.append((service_label(sr.service.key), human(v[0]), human(v[3], "B/s"),
                      human(v[4], "B/s"), str(r.active), str(r.inactive), ""))
        marks.append(("bold", {0: (S_ADDR, cells[-1][0])}))
        if not sr.dests:
            cells.append(("  " + NO_SERVERS, "", "", "", "", "", ""))
            marks.append((None, {0: (S_WARN, NO_SERVERS)}))
        for d, dr in sr.dests:
            if limit is not None and len(cells) >= limit:
                break
            v = dr.values
            drained = d.weight == 0
            cells.append(("  " + host_port(d.af, d.addr, d.port), human(v[0]), human(v[3], "B/s"),
                          human(v[4], "B/s"), str(dr.active), str(dr.inactive),
                          "0 " + DRAINING if drained else str(d.weight)))
            marks.append((S_DRAIN_ROW, {6: (S_DRAIN, DRAINING)}) if drained else None)
    shown = sum(1 for c in cells if c is not blank)
    return cells, marks, shown, total


def frame_lines(rows: list[ServiceRates], out, title: str = "", limit: int | None = None) -> list[str]:
    """One frame: the title, then services (bold) with their real servers
    under them, fitted to ``out.width``; at most ``limit`` rows of the table
    (the busiest), and then a line saying how many more there are."""
    from ipvsctl.render.layout import cut, fit, header_lines, lines, measure, rule, wrap_words

    columns = _columns()
    cells, marks, shown, total = _body(rows, limit)
    result = [out.paint(cut(title, out.width, out.ellipsis), "bold")] if title else []
    if not rows:
        result.append(out.paint("no virtual services", "dim"))
        return result
    natural = measure(columns, cells)
    layout = fit(columns, natural, cells, out.width)
    result += header_lines(layout, out)
    result.append(rule(layout, out))
    result += lines(layout, cells, out, marks, natural)
    if shown < total:
        result += wrap_words(f"... and {total - shown} more rows, less busy, below the screen "
                             "(--once in a pipe lists all)", out.width, out.ellipsis)
    if layout.dropped:
        result += wrap_words(f"(left out to fit {out.width} columns: "
                             f"{', '.join(layout.dropped)})", out.width, out.ellipsis)
    return result


class _Screen:
    """Redraws a frame in place on a terminal: back up over the previous
    frame, write the new one, clear what is left below."""

    def __init__(self, file):
        self.file = file
        self.drawn = 0

    def start(self):
        self.file.write("\x1b[?25l")  # hide the cursor while frames are drawn

    def draw(self, frame: list[str]):
        up = f"\x1b[{self.drawn}F" if self.drawn else "\r"
        self.file.write(up + "\x1b[J" + "\n".join(frame) + "\n")
        self.file.flush()
        self.drawn = len(frame)

    def stop(self):
        self.file.write("\x1b[?25h")
        self.file.flush()


class _NoHold:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


_NO_HOLD = _NoHold()


def run(read_table, file, out, interval: float = DEFAULT_INTERVAL, iterations: int | None = None,
        title: str = "", clock=time.monotonic, sleep=time.sleep, wall=time.strftime,
        terminal: bool | None = None, guard=None) -> int:
    """Read, draw, wait, repeat: ``iterations`` frames (None: until Ctrl-C).

    The first frame is drawn at once.  ``read_table()`` returns the
    (filtered) table; it may raise, which ends the watch (the caller reports
    it).  On a terminal (``out.height`` known, more than one frame) frames
    are redrawn in place and hold only the rows that fit the screen.
    Ctrl-C (KeyboardInterrupt, or interrupt.Interrupted from ``guard``, which
    also stands for SIGTERM) ends it quietly, the cursor shown again; with
    ``guard`` a frame is never cut half-way (a signal that comes while it is
    written ends the watch after it).  Returns the number of frames drawn.
    """
    if terminal is None:
        terminal = out.height is not None and iterations != 1
    screen = _Screen(file) if terminal else None
    drawn = 0
    next_at = clock()
    try:
        if screen is not None:
            screen.start()
        while iterations is None or drawn < iterations:
            delay = next_at - clock()
            if delay > 0:
                sleep(delay)
            started = clock()
            table = read_table()
            heading = f"{title}every {interval:g}s at {wall('%H:%M:%S')}, busiest first"
            if iterations is None:
                heading += " (Ctrl-C to quit)"
            limit = None
            if screen is not None:
                # the title, the header (two lines when narrow), the rule, two
                # lines for "more rows", two for columns left out, the cursor's
                limit = max(out.height - 9, 1)
            frame = frame_lines(rates(table), out, heading, limit)
            now = clock()
            took = now - started
            if took > interval:  # say so: the rhythm of the frames is not the interval's
                from ipvsctl.render.layout import cut

                late = f"{heading} (late: this frame took {took:.1f}s, more than the interval)"
                frame[0] = out.paint(cut(late, out.width, out.ellipsis), "bold")
            if screen is not None:
                frame = frame[:max(out.height - 1, 1)]  # a scrolling screen cannot be redrawn
            next_at += interval
            if next_at < now:  # the frame took longer than an interval: do not race
                next_at = now + interval
            with guard.hold() if guard is not None else _NO_HOLD:
                if screen is not None:
                    screen.draw(frame)
                else:
                    if drawn:
                        file.write("\n")
                    file.write("\n".join(frame) + "\n")
                    file.flush()
                drawn += 1
    except KeyboardInterrupt:
        pass
    finally:
        if screen is not None:
            screen.stop()
    return drawn
