"""The views for people: ``ipvsctl list`` (text tables) and ``ipvsctl watch``.

The layouts are compared with reviewed renderings in tests/data/views/,
made at 80 and 120 columns from one fixed in-memory table that has every
feature the view draws (IPv4, IPv6, fwmark, persistence with netmask, a
persistence engine, one-packet, scheduler flags, tunnels of every type,
thresholds, draining servers, a service without servers, counters from 0 to
petabytes).  After a deliberate change of layout, regenerate them with

    IPVSCTL_REGEN_VIEWS=1 .venv/bin/python -m pytest tests/unit/test_table.py

and review the diff by eye before committing it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ipvsctl import labels, listing
from ipvsctl import model as m
from ipvsctl.backend import KernelError
from ipvsctl.render import layout
from ipvsctl.render import table as tv
from ipvsctl import watch

DATA = Path(__file__).resolve().parents[2] / "data" / "views"
REGEN = os.environ.get("IPVSCTL_REGEN_VIEWS") == "1"
A4, A6 = m.AF_INET, m.AF_INET6


def _stats(c: int, scale: int = 1) -> m.Stats:
    return m.Stats(conns=c, inpkts=c * 10 * scale, outpkts=c * 8 * scale,
                   inbytes=c * 1500 * scale, outbytes=c * 90000 * scale,
                   cps=c // 100, inpps=c // 10, outpps=c // 12, inbps=c * 15, outbps=c * 900)


FIXED_TABLE = [
    (m.Service(m.ServiceKey(A4, m.IPPROTO_TCP, "192.0.2.10", 80), "wlc", m.SVC_F_PERSISTENT, 360,
               0xFFFFFF00, stats=_stats(123456)),
     [m.Destination(A4, "198.51.100.1", 80, m.FWD_MASQ, 5, 1000, 800, active_conns=12,
                    inact_conns=340, persist_conns=7, stats=_stats(61000)),
      m.Destination(A4, "198.51.100.2", 8080, m.FWD_MASQ, 0, inact_conns=3, stats=_stats(62456)),
      m.Destination(A4, "198.51.100.3", 80, m.FWD_ROUTE, 3, stats=_stats(0))]),
    (m.Service(m.ServiceKey(A4, m.IPPROTO_UDP, "192.0.2.53", 53), "rr", m.SVC_F_ONEPACKET,
               stats=_stats(9)), []),
    (m.Service(m.ServiceKey(A6, m.IPPROTO_TCP, "2001:db8:1234:5678:9abc:def0:1234:5678", 65535),
               "sh", m.SVC_F_SCHED1 | m.SVC_F_SCHED2, netmask=128, stats=_stats(10**9, 1000)),
     [m.Destination(A6, "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe", 65535, m.FWD_TUNNEL, 65535,
                    tun_type=m.TUN_GUE, tun_port=6080, tun_flags=m.TUN_F_CSUM,
                    stats=_stats(10**9, 1000)),
      m.Destination(A4, "203.0.113.7", 65535, m.FWD_TUNNEL, 1, 2147483647, 0,
                    tun_type=m.TUN_GRE, tun_flags=m.TUN_F_REMCSUM)]),
    (m.Service(m.ServiceKey(A6, fwmark=4294967295), "mh", m.SVC_F_PERSISTENT | m.SVC_F_SCHED2,
               86400 * 31, 64, "sip"),
     [m.Destination(A6, "2001:db8::2", 0, m.FWD_TUNNEL, 0, tun_type=m.TUN_IPIP)]),
    (m.Service(m.ServiceKey(A4, m.IPPROTO_SCTP, "192.0.2.11", 3868), "lc"),
     [m.Destination(A4, "198.51.100.9", 3868, m.FWD_ROUTE, 0)]),
]

LIST_MODES = {
    "plain": {},
    "stats": {"stats": True},
    "rate": {"rate": True},
    "stats-exact": {"stats": True, "exact": True},
}


def _golden(name: str, text: str) -> None:
    path = DATA / name
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: regenerate with IPVSCTL_REGEN_VIEWS=1 and review it"
    assert text == path.read_text(), f"the rendering differs from {path}"


# --------------------------------------------------------------------------
# Layout, compared with reviewed renderings
# --------------------------------------------------------------------------


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("mode", list(LIST_MODES))
def test_list_view_matches_reviewed_rendering(mode, width):
    text = tv.render_text(FIXED_TABLE, width, **LIST_MODES[mode])
    _golden(f"list-{mode}-{width}.txt", text)


@pytest.mark.parametrize("width", [20, 30, 40, 60, 80, 120])
def test_list_view_never_wider_than_asked(width):
    for kwargs in LIST_MODES.values():
        text = tv.render_text(FIXED_TABLE, width, **kwargs)
        assert max(len(line) for line in text.splitlines()) <= width


def _watch_rows():
    return watch.rates(FIXED_TABLE)


@pytest.mark.parametrize("width", [80, 120])
def test_watch_frame_matches_reviewed_rendering(width):
    lines = watch.frame_lines(_watch_rows(), layout.Out(width), "every 2s at 12:00:00, busiest first")
    _golden(f"watch-{width}.txt", "".join(line + "\n" for line in lines))


# --------------------------------------------------------------------------
# Words that stand out without colour, and colour where asked
# --------------------------------------------------------------------------


def test_markers_are_words_not_only_colours():
    text = tv.render_text(FIXED_TABLE, 120)
    assert "\x1b[" not in text
    lines = text.splitlines()
    udp = next(line for line in lines if line.startswith("UDP 192.0.2.53:53"))
    assert udp.endswith("no real servers")
    drained = next(line for line in lines if line.startswith("198.51.100.2:8080"))
    assert "0 draining" in drained
    assert any(line.startswith("SCTP 192.0.2.11:3868") and line.endswith("all real servers draining")
               for line in lines)


def test_colour_only_when_asked_or_on_a_terminal(monkeypatch):
    import io

    coloured = tv.render_text(FIXED_TABLE, 120, color=True)
    assert "\x1b[" in coloured
    assert "\x1b[" not in tv.render_text(FIXED_TABLE, 120)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    for var in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(var, raising=False)
    assert layout.output_for(io.StringIO(), 100).color is False  # not a terminal
    assert layout.output_for(Tty(), 100).color is True
    assert layout.output_for(Tty(), 100, color=False).color is False  # --no-color
    monkeypatch.setenv("NO_COLOR", "1")
    assert layout.output_for(Tty(), 100).color is False
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert layout.output_for(Tty(), 100).color is False
    monkeypatch.setenv("COLUMNS", "93")
    assert layout.output_for(io.StringIO()).width == 93


def test_ascii_rules_and_ellipsis_where_the_encoding_has_no_box_characters():
    import io

    out = layout.output_for(io.TextIOWrapper(io.BytesIO(), encoding="latin-1"), 30)
    text = "\n".join(tv.list_lines(FIXED_TABLE, out))
    assert "─" not in text and "…" not in text and "---" in text and "..." in text


def test_draining_row_is_styled():
    text = tv.render_text(FIXED_TABLE[:1], 120, color=True)
    line = next(x for x in text.splitlines() if "198.51.100.2" in x)
    assert line.startswith("\x1b[2m198.51.100.2:8080")  # the row is dim
    assert "33mdraining" in line  # and the word "draining" yellow


def test_empty_table_says_so():
    assert tv.render_text([], 80).strip() == "no virtual services"


# --------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n, unit, exact, text", [
    (0, "", False, "0"),
    (999, "", False, "999"),
    (1000, "", False, "1.0 K"),
    (1234567, "", False, "1.2 M"),
    (34000, "B/s", False, "34 KB/s"),
    (532, "B", False, "532 B"),
    (999_960, "", False, "1.0 M"),
    (10**15, "B", False, "1.0 PB"),
    (2**64 - 1, "", False, "18 E"),
    (1234567, "", True, "1,234,567"),
    (1234567, "B", True, "1,234,567 B"),
    (0.5, "", False, "0.5"),
    (3.5, "B/s", False, "3.5 B/s"),
    (12.4, "", False, "12"),
    (0.0, "", False, "0"),
])
def test_human(n, unit, exact, text):
    assert tv.human(n, unit, exact) == text


def _fit(measures, width):
    columns = [layout.Column(f"c{i}", drop=d) for i, (_, _, d) in enumerate(measures)]
    got = layout._fit(columns, [n for n, _, _ in measures], [m_ for _, m_, _ in measures], width)
    return got.widths, got.gap, got.dropped


def test_fit_wraps_then_closes_the_gap_then_leaves_columns_out_then_cuts():
    # natural widths fit: unchanged
    assert _fit([(10, 10, 0), (8, 4, 0)], 30) == ([10, 8], 2, [])
    # the second column wraps (8 -> 4) before anything else
    assert _fit([(10, 10, 0), (8, 4, 0)], 16) == ([10, 4], 2, [])
    # then the gap closes to one cell
    assert _fit([(10, 10, 0), (8, 4, 0)], 15) == ([10, 4], 1, [])
    # then columns are left out, the highest "drop" first
    assert _fit([(10, 10, 0), (8, 8, 1), (8, 8, 2)], 20) == ([10, 8], 2, ["c2"])
    assert _fit([(10, 10, 0), (8, 8, 1), (8, 8, 2)], 12) == ([10], 2, ["c2", "c1"])
    # and only what is never left out is cut (the widest first)
    assert _fit([(30, 30, 0), (8, 8, 0)], 30) == ([21, 8], 1, [])


def test_wrapping_and_cutting_never_split_a_word():
    assert layout.wrap_words("Tunnel gue:6080 csum", 8, "…") == ["Tunnel", "gue:6080", "csum"]
    assert layout.wrap_words("0 draining", 9, "…") == ["0", "draining"]
    assert layout.cut("[2001:db8::1]:443", 10, "…") == "[2001:db8…"
    assert layout.cut("198.51.100.2:80", 15, "…") == "198.51.100.2:80"


@pytest.mark.parametrize("width", [20, 30, 40, 50, 60, 70])
def test_narrow_widths_never_break_an_address_port_or_number(width):
    """Every address, port and number on screen is whole, or visibly cut
    with an ellipsis; never split over two lines (issue 10)."""
    for kwargs in LIST_MODES.values():
        text = tv.render_text(FIXED_TABLE, width, **kwargs)
        tokens = set(text.split())
        for svc, dests in FIXED_TABLE:
            for d in dests:
                label = labels.host_port(d.af, d.addr, d.port)
                shown = [t for t in tokens if t == label or (t.endswith("…") and label.startswith(t[:-1]))]
                assert shown, (width, kwargs, label, text)
        # a fragment of a number or an address starts no line
        for line in text.splitlines():
            first = line.split()[0] if line.split() else ""
            assert not first.startswith(("]", ":", "/")), (width, line)
        for number in ("2147483647/-", "1000/800", "65535"):
            if number in text or kwargs:
                continue
            assert not any(line.strip() and number.startswith(line.strip()) and line.strip() != number
                           for line in text.splitlines())


def test_each_service_table_fits_on_its_own():
    """A long IPv6 address makes its own table narrow down, not the others."""
    text = tv.render_text(FIXED_TABLE, 80)
    blocks = text.split("\n\n")
    first = blocks[0].splitlines()
    assert first[1].split() == ["Real", "server", "Forward", "Weight", "Thresh", "u/l", "Active",
                                "Inactive", "Persist"]
    assert "1000/800" in blocks[0]


def test_labels():
    d = FIXED_TABLE[2][1][0]
    assert tv.forward_label(d) == "Tunnel gue:6080 csum"
    assert tv.forward_label(FIXED_TABLE[2][1][1]) == "Tunnel gre remcsum"
    assert tv.forward_label(FIXED_TABLE[3][1][0]) == "Tunnel ipip"
    assert tv.thresholds_label(FIXED_TABLE[0][1][0]) == "1000/800"
    assert tv.thresholds_label(FIXED_TABLE[0][1][1]) == "-"
    assert labels.service_label(FIXED_TABLE[3][0].key) == "FWM 4294967295 IPv6"
    assert labels.service_label(FIXED_TABLE[2][0].key) == "TCP [2001:db8:1234:5678:9abc:def0:1234:5678]:65535"


def _keys(table):
    return [labels.service_label(s.key) for s, _ in table]


# --------------------------------------------------------------------------
# watch: rates and the loop
# --------------------------------------------------------------------------


def test_watch_rates_are_the_kernels_estimates_busiest_first():
    rows = _watch_rows()
    # by connections per second, then bytes per second
    assert [labels.service_label(r.service.key) for r in rows] == [
        "TCP [2001:db8:1234:5678:9abc:def0:1234:5678]:65535", "TCP 192.0.2.10:80",
        "UDP 192.0.2.53:53", "FWM 4294967295 IPv6", "SCTP 192.0.2.11:3868"]
    tcp = rows[1]
    st = FIXED_TABLE[0][0].stats
    assert tcp.rates.values == (st.cps, st.inpps, st.outpps, st.inbps, st.outbps)
    assert [d.addr for d, _ in tcp.dests] == ["198.51.100.2", "198.51.100.1", "198.51.100.3"]
    assert (tcp.rates.active, tcp.rates.inactive) == (12, 343)
    # a service without stats counts as idle, ties keep the table's order
    assert [r.rates.values for r in rows[3:]] == [(0, 0, 0, 0, 0)] * 2


def _with_rates(entry, cps, inbps):
    svc, dests = entry
    return (svc.replace(stats=m.Stats(cps=cps, inbps=inbps)), dests)


def test_watch_rates_sort_by_connections_then_bytes():
    a = _with_rates(FIXED_TABLE[1], 5, 10)
    b_ = _with_rates(FIXED_TABLE[4], 5, 20)
    c = _with_rates(FIXED_TABLE[0], 9, 0)
    rows = watch.rates([a, b_, c])
    assert [r.service.key for r in rows] == [c[0].key, b_[0].key, a[0].key]


class _Clock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(round(s, 3))
        self.now += s


def test_watch_run_draws_n_frames_off_a_terminal():
    import io

    clock = _Clock()
    reads = iter([FIXED_TABLE, [_with_rates(FIXED_TABLE[1], 77, 0)]])
    buf = io.StringIO()
    n = watch.run(lambda: next(reads), buf, layout.Out(100), interval=2.0, iterations=2,
                  title="netns x: ", clock=clock, sleep=clock.sleep, wall=lambda fmt: "12:00:00")
    assert n == 2
    assert clock.sleeps == [2.0]  # the first frame at once, the second an interval later
    out = buf.getvalue()
    assert out.count("netns x: every 2s at 12:00:00, busiest first") == 2
    assert "Ctrl-C" not in out and "late" not in out  # a bounded run, on time
    assert "\x1b[" not in out
    second = out.split("netns x:")[2]
    assert "UDP 192.0.2.53:53" in second and "77" in second and "TCP" not in second


def test_watch_run_keeps_its_rhythm_and_says_so_when_a_frame_is_late():
    import io

    clock = _Clock()

    def slow_read():
        clock.now += 3.0  # longer than the interval
        return FIXED_TABLE

    buf = io.StringIO()
    watch.run(slow_read, buf, layout.Out(100), interval=2.0, iterations=3,
              clock=clock, sleep=clock.sleep, wall=lambda fmt: "12:00:00")
    assert clock.sleeps == [2.0, 2.0]  # no catching up in a burst
    assert buf.getvalue().count("every 2s at 12:00:00, busiest first (late: this frame took "
                                "3.0s, more than the interval)") == 3


def test_watch_run_stops_quietly_on_ctrl_c():
    import io

    clock = _Clock()

    def sleep(s):
        raise KeyboardInterrupt

    buf = io.StringIO()
    n = watch.run(lambda: FIXED_TABLE, buf, layout.Out(100), interval=1.0,
                  clock=clock, sleep=sleep)
    assert n == 1  # the first frame, then Ctrl-C while waiting


def test_watch_run_on_a_terminal_redraws_in_place_and_shows_what_fits():
    import io

    clock = _Clock()
    calls = {"n": 0}

    def sleep(s):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        clock.now += s

    buf = io.StringIO()
    out = layout.Out(100, color=True, height=14)  # a terminal of 14 lines
    n = watch.run(lambda: FIXED_TABLE, buf, out, interval=1.0, clock=clock, sleep=sleep,
                  wall=lambda fmt: "12:00:00")
    assert n == 3
    text = buf.getvalue()
    assert "(Ctrl-C to quit)" in text
    assert text.startswith("\x1b[?25l") and text.endswith("\x1b[?25h")  # cursor hidden, shown
    frames = text.split("\x1b[J")
    assert len(frames) == 4
    drawn = frames[1].count("\n")
    assert frames[1].endswith(f"\n\x1b[{drawn}F")  # the next frame goes back up over it
    for frame in frames[1:]:
        assert frame.count("\n") <= 13  # never more lines than the screen
    assert "more rows, less busy, below the screen" in text


def test_watch_frame_lays_out_only_the_rows_asked_for():
    rows = watch.rates(FIXED_TABLE * 2000)  # 10,000 services
    lines = watch.frame_lines(rows, layout.Out(80), "t", limit=20)
    assert len(lines) <= 20 + 8  # what run() leaves room for
    assert any(line.startswith("... and ") and "more rows" in line for line in lines)


# --------------------------------------------------------------------------
# The commands, through click, on a fake backend
# --------------------------------------------------------------------------


class FakeBackend:
    def __init__(self, table):
        self._table = table
        self.closed = False

    def info(self):
        return m.Info(0x010201, 4096)

    def table(self, counters=True):
        return list(self._table)

    def services(self):
        return [svc for svc, _ in self._table]

    def service(self, key):
        for svc, _ in self._table:
            if svc.key == key:
                return svc
        raise KernelError(errno.ESRCH, "get_service")

    def destinations(self, key):
        for svc, dests in self._table:
            if svc.key == key:
                return list(dests)
        raise KernelError(errno.ESRCH, "get_dests")

    def close(self):
        self.closed = True


@pytest.fixture
def fake(monkeypatch):
    from ipvsctl import session

    state = {"netns": [], "backend": FakeBackend(FIXED_TABLE)}

    def open_backend(netns):
        state["netns"].append(netns)
        return state["backend"]

    monkeypatch.setattr(session, "open_backend", open_backend)
    return state


def invoke(*args):
    from ipvsctl.commands.group import group as cli

    return CliRunner().invoke(cli, list(args), prog_name="ipvsctl", catch_exceptions=False)


def test_list_command_plain_output_in_a_pipe(fake):
    r = invoke("list", "--width", "120")
    assert r.exit_code == 0, r.output
    # in ipvsadm's order: fwmark 4294967295 first (ipvsadm's comparator wraps)
    in_order = listing.table(FakeBackend(FIXED_TABLE))
    assert in_order[0][0].key.fwmark == 4294967295
    assert r.output == tv.render_text(in_order, 120)
    assert fake["netns"] == [None] and fake["backend"].closed


def test_ls_alias_and_filters(fake):
    r = invoke("ls", "-t", "192.0.2.10:80", "--stats", "--width", "100")
    assert r.exit_code == 0
    assert r.output.startswith("TCP 192.0.2.10:80  wlc")
    assert "UDP" not in r.output and "service total" in r.output
    r = invoke("ls", "-f", "4294967295", "-6", "--width", "100")
    assert r.output.startswith("FWM 4294967295 IPv6")
    r = invoke("ls", "--protocol", "UDP", "--width", "100")
    assert r.output.startswith("UDP 192.0.2.53:53") and "TCP" not in r.output
    r = invoke("ls", "--address", "198.51.100.9", "--width", "100")
    assert r.output.startswith("SCTP 192.0.2.11:3868")


def test_list_errors(fake):
    r = invoke("ls", "-t", "192.0.2.99:80")
    assert r.exit_code == 1 and "No such service" in r.output
    r = invoke("ls", "-t", "no:such:thing")
    assert r.exit_code == 2 and "illegal virtual server address[:port] specified" in r.output
    r = invoke("ls", "-t", "192.0.2.10:80", "-u", "192.0.2.53:53")
    assert r.exit_code == 2 and "multiple 'service-address' options specified" in r.output
    r = invoke("ls", "-6")
    assert r.exit_code == 2 and "-6/--ipv6 goes with -f" in r.output
    r = invoke("ls", "--address", "nowhere")
    assert r.exit_code == 2 and "not an IPv4 or IPv6 address" in r.output


def test_netns_reaches_the_backend_and_missing_netns_is_clear(fake, monkeypatch):
    from ipvsctl import session
    from ipvsctl.commands.group import run_app

    invoke("list", "--netns", "blue")
    invoke("watch", "--once", "--interval", "0.1", "--netns", "green")
    assert fake["netns"] == ["blue", "green"]

    def missing(netns):
        raise FileNotFoundError(errno.ENOENT, f"network namespace {netns!r} not found",
                                f"/run/netns/{netns}")

    monkeypatch.setattr(session, "open_backend", missing)
    for sub in (["list"], ["watch", "--once"], ["restore", "--json", os.devnull]):
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = run_app(sub + ["--netns", "nope"], "ipvsctl")
        if sub[0] == "restore":
            # an empty file is refused before any namespace is opened
            assert status == 2 and "not valid JSON" in err.getvalue()
            continue
        assert status == 2
        assert err.getvalue() == ("ipvsctl: network namespace 'nope' not found "
                                  "(/run/netns/nope); `ip netns list` shows the names\n")


def test_watch_command_once(fake):
    r = invoke("watch", "--once", "--interval", "0.1", "--width", "100", "--no-color")
    assert r.exit_code == 0, r.output
    assert "busiest first" in r.output and "TCP 192.0.2.10:80" in r.output
    assert "\x1b[" not in r.output


def test_completion_scripts():
    for shell in ("bash", "zsh", "fish"):
        r = invoke("completion", shell)
        assert r.exit_code == 0
        assert "_IPVSCTL_COMPLETE" in r.output


def test_completion_through_the_entry_point():
    """What the shell does: run `ipvsctl` with the completion variables set."""
    import subprocess
    import sys

    env = dict(os.environ, _IPVSCTL_COMPLETE="bash_complete", COMP_WORDS="ipvsctl li", COMP_CWORD="1")
    r = subprocess.run([sys.executable, "-c", "from ipvsctl.cli import main; main()"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "plain,list" in r.stdout.splitlines()
    env.update(COMP_WORDS="ipvsctl list --st", COMP_CWORD="2")
    r = subprocess.run([sys.executable, "-c", "from ipvsctl.cli import main; main()"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert "plain,--stats" in r.stdout.splitlines()


def _complete(words: str, cword: int) -> list[str]:
    import subprocess
    import sys

    env = dict(os.environ, _IPVSCTL_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(cword))
    r = subprocess.run([sys.executable, "-c", "from ipvsctl.cli import main; main()"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_completion_covers_every_subcommand():
    """`ipvsctl <TAB>` offers every subcommand (ls is list's alias) and
    help; `ipvsctl help <TAB>` the subcommands; each one's options complete."""
    from ipvsctl.commands.group import group as cli
    from ipvsctl.commands import SUBCOMMANDS

    offered = {x.split(",", 1)[1] for x in _complete("ipvsctl ", 1)}
    assert offered == set(SUBCOMMANDS) - {"ls"} | {"help"}
    assert {x.split(",", 1)[1] for x in _complete("ipvsctl help ", 2)} == set(SUBCOMMANDS)
    for name in offered - {"help", "completion"}:
        longest = max((o for p in cli.commands[name].params for o in getattr(p, "opts", [])
                       if o.startswith("--") and o != "--help"), key=len)
        assert f"plain,{longest}" in _complete(f"ipvsctl {name} {longest[:-1]}", 2), name


@pytest.mark.parametrize("argv", [
    ["list", "--width", "100"], ["ls", "--stats", "--width", "70"], ["list", "--rate", "-X"],
    ["ls", "-t", "192.0.2.10:80", "--width=90"], ["list", "--protocol", "UDP"],
    ["list", "--address", "198.51.100.9", "-n"], ["list", "--json"], ["list", "-f", "4294967295", "-6"],
    ["list", "-t", "192.0.2.99:80"], ["watch", "--once", "--width", "100"],
])
def test_the_fast_path_says_what_click_says(fake, argv, capsys):
    """views.run_fast (no click) and the click command print the same."""
    from ipvsctl import views

    status = views.run_fast(argv, "ipvsctl")
    fast = capsys.readouterr()
    r = invoke(*argv)
    assert status is not None
    import re

    def timeless(text):  # a watch frame says when it was drawn
        return re.sub(r"at \d\d:\d\d:\d\d", "at T", text)

    assert (status, timeless(fast.out + fast.err)) == (r.exit_code, timeless(r.output))


@pytest.mark.parametrize("argv", [["list", "--help"], ["list", "--width", "5"], ["list", "x"],
                                  ["list", "-t192.0.2.10:80"], ["list", "--protocol", "icmp"],
                                  ["list", "-t", "no:such:thing"], ["watch", "-n", "2"],
                                  ["watch", "-i", "2"], ["list", "--stats=yes"],
                                  ["list", "-t", "-L"], ["list", "--width"]])
def test_the_fast_path_leaves_the_rest_to_click(fake, argv):
    from ipvsctl import views

    assert views.run_fast(argv, "ipvsctl") is None
