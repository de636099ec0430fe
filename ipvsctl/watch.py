"""``ipvsctl watch``: connection and byte rates, live, busiest first.

Strategy: read the whole table (``Backend.table()``, one consistent read)
every interval and show, per service and per real server, the kernel's own
rate estimates (new connections, packets and bytes per second: what
``ipvsadm -Ln --rate`` shows), busiest first.  The drawing (``frame``) is
a pure function of the table, so tests feed it fixed tables; ``run`` owns
the clock, the backend and the terminal.

Why the kernel's estimates and not differences of the exact counters
between two reads: the kernel folds its per-CPU counters into the totals a
program can read only on its estimator tick (every 2 s), so the difference
of two reads taken ``interval`` apart holds 0, 1 or 2 ticks' worth of
traffic depending on where the ticks fall: a steady 40 connections/s shows
as 0, 40 or 80.  The estimator is computed on the tick itself and is
smoothed over a few seconds, so it is steady, and it costs no second sample
(the first frame shows at once).

On a terminal the frame is redrawn in place (rich ``Live``: cursor moves
only, no alternate screen, so it works over SSH in any VT100-ish terminal
and leaves the last frame on screen after Ctrl-C).  Off a terminal (a pipe,
a test, ``--once``) each frame is printed after the previous one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ipvsctl import model as m

DEFAULT_INTERVAL = 2.0


@dataclass
class Rates:
    """Rates of one service or real server: (cps, inpps, outpps, inbps, outbps)."""

    values: tuple[int, ...]
    active: int = 0
    inactive: int = 0

    @property
    def sort_key(self) -> tuple:
        return (self.values[0], self.values[3] + self.values[4])


@dataclass
class ServiceRates:
    service: m.Service
    rates: Rates
    dests: list[tuple[m.Destination, Rates]] = field(default_factory=list)


def _estimates(st: m.Stats | None) -> tuple[int, ...]:
    st = st or m.Stats()
    return (st.cps, st.inpps, st.outpps, st.inbps, st.outbps)


def rates(table) -> list[ServiceRates]:
    """Rates of every service and real server of ``table``, busiest first.

    Sorted by new connections per second, then bytes per second (in + out);
    ties keep the table's order (ipvsadm's, as read).
    """
    out = []
    for svc, dests in table:
        sr = ServiceRates(svc, Rates(_estimates(svc.stats), sum(d.active_conns for d in dests),
                                     sum(d.inact_conns for d in dests)))
        for d in dests:
            sr.dests.append((d, Rates(_estimates(d.stats), d.active_conns, d.inact_conns)))
        sr.dests.sort(key=lambda dr: dr[1].sort_key, reverse=True)
        out.append(sr)
    out.sort(key=lambda s: s.rates.sort_key, reverse=True)
    return out


# (header, index into Rates.values, unit): connections and bytes; packets
# are in the rates too but left out of the frame to keep it to 80 columns.
_COLUMNS = (("Conn/s", 0, ""), ("In B/s", 3, "B/s"), ("Out B/s", 4, "B/s"))


def _rate_cells(r: Rates) -> list[str]:
    from ipvsctl.render.table import human

    return [human(r.values[i], unit) for _, i, unit in _COLUMNS]


class Frame:
    """One screen: services (bold) with their real servers under them.

    A renderable: column widths are fitted to the width rich offers (see
    ipvsctl.render.table.fit), so addresses stay whole on 80 columns.
    """

    def __init__(self, rows: list[ServiceRates], title: str = ""):
        self.rows = rows
        self.title = title

    def _lines(self):
        """(cells, style, end_section) of every row."""
        from rich.text import Text

        from ipvsctl.render import table as tv

        out = []
        for i, sr in enumerate(self.rows):
            label = Text(tv.service_label(sr.service.key), tv.S_ADDR)
            last = i + 1 == len(self.rows)
            out.append(([label, *_rate_cells(sr.rates), str(sr.rates.active),
                         str(sr.rates.inactive), ""], "bold", False))
            if not sr.dests:
                blank = [""] * (len(_COLUMNS) + 3)
                out.append(([Text("  " + tv.NO_SERVERS, tv.S_WARN), *blank], None, not last))
            for j, (d, r) in enumerate(sr.dests):
                weight = (Text.assemble("0 ", (tv.DRAINING, tv.S_DRAIN)) if d.weight == 0
                          else str(d.weight))
                out.append((["  " + tv.host_port(d.af, d.addr, d.port), *_rate_cells(r),
                             str(r.active), str(r.inactive), weight],
                            tv.S_DRAIN_ROW if d.weight == 0 else None,
                            j + 1 == len(sr.dests) and not last))
        return out

    def __rich_console__(self, console, options):
        from rich import box
        from rich.table import Table
        from rich.text import Text

        from ipvsctl.render import table as tv

        headers = ["Service / real server"] + [name for name, _, _ in _COLUMNS] + \
            ["Active", "Inact", "Weight"]
        lines = self._lines()
        measures = [tv._measure(h, [cells[k] for cells, _, _ in lines]) for k, h in enumerate(headers)]
        widths, gap = tv.fit(measures, options.max_width)
        t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, gap - 1, 0, 0),
                  title=self.title or None, title_justify="left", title_style="bold",
                  header_style="bold")
        for k, (h, w) in enumerate(zip(headers, widths)):
            t.add_column(h, justify="left" if k == 0 else "right", width=w, overflow="fold")
        for cells, style, end_section in lines:
            t.add_row(*cells, style=style, end_section=end_section)
        if not lines:
            t.add_row(Text("no virtual services", "dim"), *[""] * (len(headers) - 1))
        yield t


def frame(rows: list[ServiceRates], title: str = "") -> Frame:
    return Frame(rows, title)


def run(read_table, console, interval: float = DEFAULT_INTERVAL, iterations: int | None = None,
        title: str = "", clock=time.monotonic, sleep=time.sleep, wall=time.strftime) -> int:
    """Read, draw, wait, repeat: ``iterations`` frames (None: until Ctrl-C).

    The first frame is drawn at once.  ``read_table()`` returns the
    (filtered) table; it may raise, which ends the watch (the caller reports
    it).  Returns the number of frames drawn.
    """
    live = None
    drawn = 0
    next_at = clock()
    try:
        if console.is_terminal and iterations != 1:
            from rich.live import Live

            live = Live(console=console, auto_refresh=False, transient=False)
            live.start()
        while iterations is None or drawn < iterations:
            delay = next_at - clock()
            if delay > 0:
                sleep(delay)
            table = read_table()
            now = clock()
            next_at += interval
            if next_at < now:  # reading took longer than an interval: do not race
                next_at = now + interval
            heading = f"{title}every {interval:g}s at {wall('%H:%M:%S')}, busiest first"
            if iterations is None:
                heading += " (Ctrl-C to quit)"
            view = frame(rates(table), heading)
            if live is not None:
                live.update(view, refresh=True)
            else:
                if drawn:
                    console.print()
                console.print(view)
            drawn += 1
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
    return drawn
