"""``ipvsctl list`` and ``ipvsctl watch`` without click: their options as
data, their bodies, and a fast path for plain command lines.

Strategy: importing click costs about 0.1 s under User-Mode Linux, a third
of what listing a table of 10,000 entries costs in all, and ``list`` should
cost about what ``-Ln --stats`` costs.  So the options of the two views are
declared once, here, as data (``Opt``); ipvsctl.commands.options turns them
into click options (help, completion, error messages), and ``run_fast`` parses a plain
line itself and runs the same body.  "Plain" is deliberately narrow: known
spellings, ``--long=value``, a value as the next word, values that convert
cleanly.  Anything else (``--help``, an unknown word, a bad value, a short
option with its value attached) returns None and the line goes to click,
which reports it in its usual words.

Errors leave as ``session.Failure`` (``PROG: message`` and an exit status)
or ``Usage`` (a bad option value, reported by click); neither needs click.
"""

from __future__ import annotations

import sys

from ipvsctl.session import Failure, opened, read_failure, report
from ipvsctl.vocab import EXIT_READ_FAILED, MAX_SECONDS, PROTOCOLS


class Usage(Exception):
    """A bad option value; ``hint`` names the option (None: the line)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


# --------------------------------------------------------------------------
# The options, as data
# --------------------------------------------------------------------------


class Opt:
    """One option: the parameter it fills, its spellings, its kind ("flag",
    "text", "int", "float", "choice"), the least number it takes, its
    choices, default, metavar and help."""

    __slots__ = ("dest", "flags", "kind", "minimum", "choices", "default", "metavar", "help",
                 "show_default", "single")

    def __init__(self, dest, flags, kind="flag", minimum=None, choices=(), default=None,
                 metavar=None, help="", show_default=False, single=False):
        self.dest = dest
        self.flags = flags
        self.kind = kind
        self.minimum = minimum
        self.choices = choices
        self.default = False if kind == "flag" and default is None else default
        self.metavar = metavar
        self.help = help
        self.show_default = show_default
        self.single = single  # names one thing: given twice is an error (click says so)

    def convert(self, text: str):
        """The value of ``text``, or None when only click can say what is wrong."""
        if self.kind == "text":
            return text
        if self.kind == "choice":
            low = text.lower()
            return low if low in self.choices else None
        try:
            value = int(text) if self.kind == "int" else float(text)
        except ValueError:
            return None
        if not value <= MAX_SECONDS or (self.minimum is not None and value < self.minimum):
            return None  # NaN, infinite or too long (Seconds says so), or below the range
        return value


def spellings(p) -> tuple[str, ...]:
    """The options that name a service of protocol ``p`` (a vocab.Term):
    ipvsadm's (-t, --tcp-service ...), which ipvsctl's views take too."""
    return tuple(s for s in (p.short, p.option) if s)


SELECTION = (
    # -t/--tcp-service, -u/--udp-service, --sctp-service (their dest: tcp, udp, sctp)
    *(Opt(p.key, spellings(p), "text", metavar="HOST:PORT", help=f"Only this {p.label} service.",
          single=True)
      for p in PROTOCOLS),
    Opt("fwmark", ("-f", "--fwmark-service"), "text", metavar="MARK",
        help="Only this firewall-mark service.", single=True),
    Opt("ipv6", ("-6", "--ipv6"), help="With -f: the IPv6 fwmark service."),
    Opt("protocol", ("--protocol",), "choice", choices=(*PROTOCOLS.numbers, "fwmark"),
        help="Only services of this protocol (fwmark: firewall-mark services).", single=True),
    Opt("address", ("--address",), "text", metavar="ADDR", single=True,
        help="Only services with this virtual address (all their real servers) or with this "
             "real server (only the matching real servers)."),
)
OUTPUT = (
    Opt("width", ("--width",), "int", minimum=20, metavar="N",
        help="Lay the table out for N columns (default: the terminal's, else $COLUMNS, else 80)."),
    Opt("no_color", ("--no-color",),
        help="No colours (also without a terminal, or with NO_COLOR set)."),
)
NETNS = (
    Opt("netns", ("--netns",), "text", metavar="NAME",
        help="Work on the IPVS table of network namespace NAME (as in `ip netns`; or a path "
             "to a namespace file)."),
)
NUMERIC = Opt("numeric", ("-n", "--numeric"),
              help="Accepted as in ipvsadm; addresses are always numeric.")

LIST_OPTIONS = SELECTION + (
    Opt("stats", ("--stats",), help="Add the counters: connections, packets, bytes."),
    Opt("rate", ("--rate",), help="Add the rates: connections, packets, bytes per second."),
    Opt("exact", ("-X", "--exact"), help="Counters with every digit, not 1.2 M."),
    Opt("as_json", ("--json",), help="One JSON document for programs (schema: docs/json.md)."),
    NUMERIC,
) + OUTPUT + NETNS

WATCH_OPTIONS = SELECTION + (
    Opt("interval", ("--interval",), "float", minimum=0.1, default=2.0, metavar="SECONDS",
        show_default=True,
        help="Time between two frames (the kernel updates its rate estimates every 2 s)."),
    Opt("once", ("--once",), help="Show one frame, then exit."),
    Opt("iterations", ("--iterations",), "int", minimum=1, metavar="N",
        help="Show N frames, then exit."),
    NUMERIC,
) + OUTPUT + NETNS


def parse_fast(options, argv: list[str]) -> dict | None:
    """The parameters of a plain line, or None to let click read it."""
    by_flag = {flag: opt for opt in options for flag in opt.flags}
    params = {opt.dest: opt.default for opt in options}
    seen = set()
    i, n = 0, len(argv)
    while i < n:
        word = argv[i]
        i += 1
        name, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        opt = by_flag.get(name)
        if opt is None:
            return None
        if opt.kind == "flag":
            if eq:
                return None
            params[opt.dest] = True
            continue
        if eq:
            text = inline
        elif i < n and argv[i][:1] != "-":  # a value that looks like an option: click decides
            text = argv[i]
            i += 1
        else:
            return None
        value = opt.convert(text)
        if value is None or (opt.single and opt.dest in seen):
            return None  # click says what is wrong (a value twice: options.only_once)
        seen.add(opt.dest)
        params[opt.dest] = value
    params.pop("numeric", None)
    return params


# --------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------


class Selection:
    """The one service a view was asked for: its key and the words naming it."""

    __slots__ = ("key", "given")

    def __init__(self, key, given: str | None):
        self.key = key
        self.given = given


def selected_key(tcp, udp, sctp, fwmark, ipv6) -> Selection | None:
    """The service named by -t/-u/--sctp-service/-f [-6], parsed as ipvsadm does."""
    from ipvsctl.grammar import ParseError, named

    options = [(p.rule, value) for p, value in zip(PROTOCOLS, (tcp, udp, sctp)) if value is not None]
    if fwmark is not None:
        options.append(("-f", fwmark))
    if ipv6 and fwmark is None:
        raise Usage("-6/--ipv6 goes with -f/--fwmark-service")
    if not options:
        return None
    try:
        return Selection(named(options, ipv6).service_key(), options[-1][1])
    except ParseError as e:
        raise Usage(e.message.strip() or "bad service address") from None


def address_filter(address):
    if address is None:
        return None
    from ipvsctl.listing import normalize_address

    try:
        return normalize_address(address)
    except ValueError as e:
        raise Usage(str(e), "'--address'") from None


def read_selected(backend, selection: Selection | None, protocol, address, counters: bool = True):
    """The table in ipvsadm's order, filtered (listing.table); Failure when a
    read fails, with a hint when the one service asked for does not exist."""
    import errno

    from ipvsctl.backend import KernelError
    from ipvsctl.listing import table

    key = selection.key if selection is not None else None
    try:
        return table(backend, key, counters=counters, protocol=protocol.lower() if protocol else None,
                     address=address)
    except KernelError as e:
        if key is not None and e.errno == errno.ESRCH:
            from ipvsctl.hints import missing_service

            try:
                existing = [svc.key for svc in backend.services()]
            except KernelError:
                existing = []
            raise Failure(missing_service(key, selection.given, existing), EXIT_READ_FAILED) from None
        raise read_failure(e) from None


def output(width, no_color):
    from ipvsctl.render.layout import output_for

    return output_for(sys.stdout, width=width, color=False if no_color else None)


# --------------------------------------------------------------------------
# The bodies
# --------------------------------------------------------------------------


def run_list(tcp=None, udp=None, sctp=None, fwmark=None, ipv6=False, protocol=None, address=None,
             stats=False, rate=False, exact=False, as_json=False, width=None, no_color=False,
             netns=None) -> int:
    """``ipvsctl list``: see docs/usage-views.md."""
    from ipvsctl.backend import KernelError

    key = selected_key(tcp, udp, sctp, fwmark, ipv6)
    address = address_filter(address)
    with opened(netns) as backend:
        info = None
        if as_json:
            try:
                info = backend.info()
            except KernelError as e:
                raise read_failure(e) from None
        # The counters are read only when they are shown.
        table = read_selected(backend, key, protocol, address, counters=as_json or stats or rate)
    if as_json:
        from ipvsctl.render.json import dumps, table_doc

        out = sys.stdout
        out.write(dumps(table_doc(info, table), pretty=out.isatty()))
        return 0
    from ipvsctl.render.layout import write_lines
    from ipvsctl.render.table import list_lines

    write_lines(sys.stdout, list_lines(table, output(width, no_color), stats=stats, rate=rate,
                                       exact=exact))
    return 0


def run_watch(tcp=None, udp=None, sctp=None, fwmark=None, ipv6=False, protocol=None, address=None,
              interval=2.0, once=False, iterations=None, width=None, no_color=False,
              netns=None) -> int:
    """``ipvsctl watch``: see docs/usage-views.md.  Ctrl-C is its normal
    end (status 0); SIGTERM ends it the same way, quietly, with 143."""
    from ipvsctl import watch
    from ipvsctl.interrupt import SIGINT, Guard

    key = selected_key(tcp, udp, sctp, fwmark, ipv6)
    address = address_filter(address)
    if once:
        if iterations not in (None, 1):  # which did the user mean?  (--once won, silently)
            raise Usage(f"--once and --iterations {iterations} do not go together")
        iterations = 1
    out = output(width, no_color)
    title = f"netns {netns}: " if netns else ""
    with opened(netns) as backend, Guard() as guard:
        watch.run(lambda: read_selected(backend, key, protocol, address), sys.stdout, out,
                  interval=interval, iterations=iterations, title=title, guard=guard)
    return 0 if guard.signum in (None, SIGINT) else guard.status


VIEWS = {"list": (LIST_OPTIONS, run_list), "ls": (LIST_OPTIONS, run_list),
         "watch": (WATCH_OPTIONS, run_watch)}


def run_fast(args: list[str], prog: str) -> int | None:
    """Run a plain ``list``/``ls``/``watch`` line without click; None when
    the line is not plain (click reads it then, errors included)."""
    options, body = VIEWS[args[0]]
    params = parse_fast(options, args[1:])
    if params is None:
        return None
    try:
        return body(**params)
    except Usage:
        return None  # click reports it, in its words
    except Failure as e:
        return report(e, prog, sys.stderr)
