"""``ipvsctl watch``: connection and byte rates, live, busiest first.

Strategy: sample the whole table (``Backend.table()``, one consistent read)
every interval, and turn the difference of two samples into rates per
service and per real server: new connections, packets and bytes per second,
computed here from the kernel's exact 64-bit counters rather than read from
its rate estimators (which are smoothed over several seconds).  The math
(``rates``) and the drawing (``frame``) are pure functions, so tests feed
them fixed samples; ``run`` owns the clock, the backend and the terminal.

On a terminal the frame is redrawn in place (rich ``Live``: cursor moves
only, no alternate screen, so it works over SSH in any VT100-ish terminal
and leaves the last frame on screen after Ctrl-C).  Off a terminal (a pipe,
a test, ``--once``) each frame is printed after the previous one.

The kernel adds its per-CPU counters into the totals a program can read on
its estimator timer, every 2 seconds on Linux 6.x; the default interval is
that, and a shorter one shows rates that jump between 0 and double.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ipvsctl import model as m

DEFAULT_INTERVAL = 2.0
_FIELDS = ("conns", "inpkts", "outpkts", "inbytes", "outbytes")


@dataclass(frozen=True)
class Sample:
    """One read of the table and when it was taken (monotonic seconds)."""

    at: float
    table: list


@dataclass
class Rates:
    """Per-second rates of one service or real server over one interval.

    ``values`` is None when there is no rate yet: an entry that was not in
    the previous sample, or whose counters went backwards (zeroed with -Z, or
    deleted and re-created in between).
    """

    values: tuple[float, ...] | None
    active: int = 0
    inactive: int = 0

    @property
    def sort_key(self) -> tuple:
        if self.values is None:
            return (-1.0, -1.0)
        return (self.values[0], self.values[3] + self.values[4])


@dataclass
class ServiceRates:
    service: m.Service
    rates: Rates
    dests: list[tuple[m.Destination, Rates]] = field(default_factory=list)


def _counters(st: m.Stats | None) -> tuple[int, ...]:
    st = st or m.Stats()
    return (st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes)


def _rate(prev: tuple[int, ...] | None, cur: tuple[int, ...], dt: float) -> tuple[float, ...] | None:
    if prev is None or dt <= 0:
        return None
    deltas = [c - p for c, p in zip(cur, prev)]
    if any(d < 0 for d in deltas):
        return None  # zeroed (ipvsadm -Z) or deleted and re-created in between
    return tuple(d / dt for d in deltas)


def _dest_id(d: m.Destination) -> tuple:
    return (d.af, d.addr, d.port)


def rates(prev: Sample, cur: Sample) -> list[ServiceRates]:
    """Rates of every service and real server of ``cur``, busiest first.

    Sorted by new connections per second, then bytes per second (in + out);
    ties keep ``cur``'s order (ipvsadm's, as read).
    """
    dt = cur.at - prev.at
    before_svc = {svc.key: _counters(svc.stats) for svc, _ in prev.table}
    before_dest = {(svc.key, _dest_id(d)): _counters(d.stats)
                   for svc, dests in prev.table for d in dests}
    out = []
    for svc, dests in cur.table:
        active = sum(d.active_conns for d in dests)
        inactive = sum(d.inact_conns for d in dests)
        sr = ServiceRates(svc, Rates(_rate(before_svc.get(svc.key), _counters(svc.stats), dt),
                                     active, inactive))
        for d in dests:
            r = _rate(before_dest.get((svc.key, _dest_id(d))), _counters(d.stats), dt)
            sr.dests.append((d, Rates(r, d.active_conns, d.inact_conns)))
        sr.dests.sort(key=lambda dr: dr[1].sort_key, reverse=True)
        out.append(sr)
    out.sort(key=lambda s: s.rates.sort_key, reverse=True)
    return out


# (header, index into Rates.values, unit): connections and bytes; packets
# are in the rates too but left out of the frame to keep it to 80 columns.
_COLUMNS = (("Conn/s", 0, ""), ("In B/s", 3, "B/s"), ("Out B/s", 4, "B/s"))


def _rate_cells(r: Rates) -> list[str]:
    from ipvsctl.render.table import human

    if r.values is None:
        return ["-"] * len(_COLUMNS)
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
    """Sample, draw, repeat: ``iterations`` frames (None: until Ctrl-C).

    ``read_table()`` returns the (filtered) table; it may raise KernelError,
    which ends the watch (the caller reports it).  Returns the number of
    frames drawn.
    """
    live = None
    drawn = 0
    prev = Sample(clock(), read_table())
    next_at = prev.at + interval
    try:
        if console.is_terminal and iterations != 1:
            from rich.live import Live

            live = Live(console=console, auto_refresh=False, transient=False)
            live.start()
            # Something to look at at once; rates need a second sample.
            live.update(frame(rates(prev, prev), f"{title}measuring for {interval:g}s ..."),
                        refresh=True)
        while iterations is None or drawn < iterations:
            delay = next_at - clock()
            if delay > 0:
                sleep(delay)
            cur = Sample(clock(), read_table())
            next_at += interval
            if next_at < cur.at:  # reading took longer than an interval: do not race
                next_at = cur.at + interval
            heading = f"{title}every {interval:g}s at {wall('%H:%M:%S')}, busiest first"
            if iterations is None:
                heading += " (Ctrl-C to quit)"
            view = frame(rates(prev, cur), heading)
            if live is not None:
                live.update(view, refresh=True)
            else:
                if drawn:
                    console.print()
                console.print(view)
            drawn += 1
            prev = cur
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
    return drawn
