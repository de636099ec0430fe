"""The ipvsadm command-line grammar, defined once as data, and its parser.

Strategy: ipvsadm's surface is a flat option list (parsed by popt) plus a
table saying which command accepts which option.  Both are data here:
``OPTIONS`` (spelling, arity, meaning) and ``COMMAND_RULES`` (per command:
required, allowed and mutually exclusive options).  One scanner walks argv the
way popt does (bundled short options, ``--long=value``, optional arguments,
leftover words), and one checker applies the rules in ipvsadm's order, so that
the first error reported for a bad line is the one ipvsadm reports, word for
word, with its exit status.  The same ``parse`` serves the command line and
every line of a ``-R`` stream; it does no I/O except the name look-ups
ipvsadm also does (host and service names), and it never touches the kernel.

Exit statuses follow ipvsadm: 2 for a rejected value or combination, 255 for
a malformed command line ("Try ... -h"), popt errors and kernel errors.
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py's enum classes cost ~6 ms of start-up

from ipvsctl import model as m
from ipvsctl import vocab as v
from ipvsctl.cache import BoundedCache
from ipvsctl.vocab import (EXIT_INVALID, EXIT_USAGE, IFNAME_MAX, INT_MAX, MAX_TIMEOUT, PENAME_MAX,
                           SCHEDNAME_MAX, UINT_MAX)


class ParseError(Exception):
    """A command line ipvsadm would refuse: message for stderr, exit status.

    ``try_help`` marks the errors that ipvsadm reports with its
    "Try `ipvsadm -h' ..." line instead of a message of its own.
    """

    def __init__(self, message: str, exit_code: int = EXIT_INVALID, try_help: bool = False):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.try_help = try_help


# --------------------------------------------------------------------------
# The options.  ``name`` is the option's name in ipvsadm's messages (several
# spellings share one name: -t/-u/--sctp-service/-f are all
# "service-address"); ``order`` is its place in the rule check, which decides
# which error wins when a line has several.
# --------------------------------------------------------------------------

NONE, REQUIRED, OPTIONAL = 0, 1, 2

# Option names in ipvsadm's check order.
OPTION_NAMES = (
    "numeric", "connection", "service-address", "scheduler", "persistent",
    "netmask", "real-server", "forwarding-method", "weight", "u-threshold",
    "l-threshold", "mcast-interface", "timeout", "daemon", "stats", "rate",
    "thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops", "pe",
    "sched-flags", "mcast-group", "mcast-port", "mcast-ttl", "sync-maxlen",
    "tun-info", "tun-type", "tun-port", "tun-nocsum", "tun-csum", "tun-remcsum",
)


class Opt:
    """One ipvsadm option: long and short name, argument arity, and what the
    scanner does with it (see _apply_option)."""

    __slots__ = ("long", "short", "arity", "action")

    def __init__(self, long: str, short: str | None, arity: int, action: str):
        self.long = long
        self.short = short
        self.arity = arity
        self.action = action

    def __repr__(self) -> str:
        return f"Opt({self.long!r}, {self.short!r}, {self.arity!r}, {self.action!r})"


OPTIONS = (
    # commands
    Opt("add-service", "A", NONE, "cmd:add-service"),
    Opt("edit-service", "E", NONE, "cmd:edit-service"),
    Opt("delete-service", "D", NONE, "cmd:delete-service"),
    Opt("clear", "C", NONE, "cmd:flush"),
    Opt("list", "L", NONE, "cmd:list"),
    Opt("list", "l", NONE, "cmd:list"),
    Opt("zero", "Z", NONE, "cmd:zero"),
    Opt("add-server", "a", NONE, "cmd:add-server"),
    Opt("edit-server", "e", NONE, "cmd:edit-server"),
    Opt("delete-server", "d", NONE, "cmd:delete-server"),
    Opt("set", None, NONE, "cmd:set"),
    Opt("help", "h", NONE, "cmd:help"),
    Opt("version", "v", NONE, "cmd:version"),
    Opt("restore", "R", NONE, "cmd:restore"),
    Opt("save", "S", NONE, "cmd:save"),
    Opt("start-daemon", None, REQUIRED, "cmd:start-daemon"),
    Opt("stop-daemon", None, REQUIRED, "cmd:stop-daemon"),
    # virtual service
    # -t, -u, --sctp-service: spelt in the vocabulary (one per protocol)
    *(Opt(p.option[2:], p.short and p.short[1:], REQUIRED, f"service:{p.key}") for p in v.PROTOCOLS),
    Opt("fwmark-service", "f", REQUIRED, "service:fwmark"),
    Opt("scheduler", "s", REQUIRED, "scheduler"),
    Opt("persistent", "p", OPTIONAL, "persistent"),
    Opt("netmask", "M", REQUIRED, "netmask"),
    Opt("real-server", "r", REQUIRED, "real-server"),
    # -m, -i, -g: spelt in the vocabulary (the forwarding methods ipvsadm offers)
    *(Opt(f.option[2:], f.short[1:], NONE, f"fwd:{f.key}") for f in v.FORWARDS if f.option),
    Opt("weight", "w", REQUIRED, "weight"),
    Opt("u-threshold", "x", REQUIRED, "u-threshold"),
    Opt("l-threshold", "y", REQUIRED, "l-threshold"),
    Opt("numeric", "n", NONE, "flag:numeric"),
    Opt("connection", "c", NONE, "flag:connection"),
    Opt("mcast-interface", None, REQUIRED, "mcast-interface"),
    Opt("syncid", None, REQUIRED, "syncid"),
    Opt("timeout", None, NONE, "flag:timeout"),
    Opt("daemon", None, NONE, "flag:daemon"),
    Opt("stats", None, NONE, "flag:stats"),
    Opt("rate", None, NONE, "flag:rate"),
    Opt("thresholds", None, NONE, "flag:thresholds"),
    Opt("persistent-conn", None, NONE, "flag:persistent-conn"),
    Opt("nosort", None, NONE, "flag:nosort"),
    Opt("sort", None, NONE, "sort"),
    Opt("exact", "X", NONE, "flag:exact"),
    Opt("ipv6", "6", NONE, "ipv6"),
    Opt("ops", "o", NONE, "ops"),
    Opt("pe", None, REQUIRED, "pe"),
    Opt("sched-flags", "b", REQUIRED, "sched-flags"),
    Opt("mcast-group", None, REQUIRED, "mcast-group"),
    Opt("mcast-port", None, REQUIRED, "mcast-port"),
    Opt("mcast-ttl", None, REQUIRED, "mcast-ttl"),
    Opt("sync-maxlen", None, REQUIRED, "sync-maxlen"),
    Opt("tun-info", None, NONE, "flag:tun-info"),
    Opt("tun-type", None, REQUIRED, "tun-type"),
    Opt("tun-port", None, REQUIRED, "tun-port"),
    # --tun-nocsum, --tun-csum, --tun-remcsum: spelt in the vocabulary
    *(Opt(c.option[2:], None, NONE, f"tun-flag:{c.number}") for c in v.CHECKSUMS),
)
LONG_OPTIONS = {o.long: o for o in OPTIONS}
SHORT_OPTIONS = {o.short: o for o in OPTIONS if o.short}

# --------------------------------------------------------------------------
# Which command takes which option.  Everything not named is refused with
# "Illegal '<option>' option with the '<command>' command".
# --------------------------------------------------------------------------


class Rule:
    """The options a command requires, allows, and allows at most one of."""

    __slots__ = ("required", "optional", "exclusive")

    def __init__(self, required: frozenset = frozenset(), optional: frozenset = frozenset(),
                 exclusive: frozenset = frozenset()):
        self.required = required
        self.optional = optional
        self.exclusive = exclusive  # at most one of these

    @property
    def allowed(self) -> frozenset:
        return self.required | self.optional | self.exclusive


def _rule(required=(), optional=(), exclusive=()):
    return Rule(frozenset(required), frozenset(optional), frozenset(exclusive))


_SERVICE_SETTINGS = ("scheduler", "persistent", "netmask", "ops", "pe", "sched-flags")
_SERVER_SETTINGS = ("forwarding-method", "weight", "u-threshold", "l-threshold",
                    "tun-type", "tun-port", "tun-nocsum", "tun-csum", "tun-remcsum")
COMMAND_RULES = {
    "add-service": _rule(["service-address"], _SERVICE_SETTINGS),
    "edit-service": _rule(["service-address"], _SERVICE_SETTINGS),
    "delete-service": _rule(["service-address"]),
    "flush": _rule(),
    "list": _rule(
        optional=("numeric", "stats", "rate", "thresholds", "persistent-conn",
                  "nosort", "syncid", "exact", "tun-info"),
        exclusive=("connection", "service-address", "timeout", "daemon")),
    "add-server": _rule(["service-address", "real-server"], _SERVER_SETTINGS),
    "delete-server": _rule(["service-address", "real-server"]),
    "edit-server": _rule(["service-address", "real-server"], _SERVER_SETTINGS),
    "set": _rule(),
    "start-daemon": _rule(optional=("mcast-interface", "syncid", "mcast-group",
                                    "mcast-port", "mcast-ttl", "sync-maxlen")),
    "stop-daemon": _rule(optional=("syncid",)),
    "restore": _rule(),
    "save": _rule(optional=("numeric",)),
    "zero": _rule(optional=("service-address",)),
}

# Tunnel options by tunnel type (same message shapes as the command rules).
TUNNEL_OPTIONS = ("tun-port", "tun-nocsum", "tun-csum", "tun-remcsum")
_TUNNEL_OPTION_SET = frozenset(TUNNEL_OPTIONS)
_TUNNEL_ANY = _TUNNEL_OPTION_SET | {"tun-type"}
TUNNEL_RULES = {
    m.TUN_IPIP: _rule(),
    m.TUN_GUE: _rule(["tun-port"], exclusive=("tun-nocsum", "tun-csum", "tun-remcsum")),
    m.TUN_GRE: _rule(exclusive=("tun-nocsum", "tun-csum")),
}

_ALLOWED = {r: r.allowed for r in (*COMMAND_RULES.values(), *TUNNEL_RULES.values())}


# --------------------------------------------------------------------------
# The parsed command
# --------------------------------------------------------------------------


class Format:
    """How a listing is printed: ipvsadm's list flags (all off by default)."""

    __slots__ = FLAGS = ("numeric", "stats", "rate", "thresholds", "persistent_conn", "nosort",
                         "exact", "tun_info", "rule")  # rule: -S, print as commands

    def __init__(self, **flags: bool):
        for name in self.FLAGS:
            setattr(self, name, flags.pop(name, False))
        if flags:
            raise TypeError(f"Format has no flag {sorted(flags)[0]!r}")

    def __eq__(self, other):
        if not isinstance(other, Format):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.FLAGS)

    def __repr__(self) -> str:
        return "Format(%s)" % ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FLAGS)


class Command:
    """One ipvsadm command line, validated, with ipvsadm's defaults filled in.

    A plain class whose defaults live on the class: a restore parses a
    hundred thousand of these, and an instance only stores what its line set.
    """

    # virtual service
    af = m.AF_INET
    protocol = 0
    addr: bytes | None = None  # packed address
    port = 0
    fwmark = 0
    scheduler = ""
    flags = 0
    timeout = 0
    netmask = m.IPV4_FULL_MASK
    pe_name = ""
    # real server
    dest_af = m.AF_INET
    dest_addr: bytes | None = None
    dest_port = 0
    fwd = m.FWD_ROUTE
    weight = 1
    u_threshold = 0
    l_threshold = 0
    tun_type = m.TUN_IPIP
    tun_port = 0
    tun_flags = 0
    # daemon
    daemon_state = 0
    mcast_ifn = ""
    syncid = 0
    sync_maxlen = 0
    mcast_group: str | None = None
    mcast_port = 0
    mcast_ttl = 0
    # --set
    timeouts: m.Timeouts | None = None

    def __init__(self, name: str):
        self.name = name
        self.options: set = set()
        self.fmt = Format()

    def __repr__(self) -> str:
        return f"Command({self.name!r}, {vars(self)!r})"

    # ---- model views ------------------------------------------------------
    def service_key(self) -> m.ServiceKey:
        return _service_key(self.af, self.protocol, self.addr, self.port, self.fwmark)

    def service(self) -> m.Service:
        return m.Service(key=self.service_key(), scheduler=self.scheduler, flags=self.flags,
                         timeout=self.timeout, netmask=self.netmask, pe_name=self.pe_name)

    def destination(self) -> m.Destination:
        return m.Destination(af=self.dest_af, addr=socket.inet_ntop(self.dest_af, self.dest_addr),
                             port=self.dest_port, fwd=self.fwd, weight=self.weight,
                             u_threshold=self.u_threshold, l_threshold=self.l_threshold,
                             tun_type=self.tun_type, tun_port=self.tun_port,
                             tun_flags=self.tun_flags)

    def daemon(self) -> m.Daemon:
        return m.Daemon(state=self.daemon_state, mcast_ifn=self.mcast_ifn, syncid=self.syncid,
                        sync_maxlen=self.sync_maxlen, mcast_group=self.mcast_group,
                        mcast_port=self.mcast_port, mcast_ttl=self.mcast_ttl)


def _new_service_key(ident: tuple) -> m.ServiceKey:
    af, protocol, addr, port, fwmark = ident
    if fwmark:
        return m.ServiceKey(af=af, fwmark=fwmark)
    return m.ServiceKey(af=af, protocol=protocol, addr=socket.inet_ntop(af, addr), port=port)


# Each service's key made once: a restore names each service again on every
# real-server line.  The parser is a function of its line, so its memo is
# the module's (bounded by the one rule of cache.BoundedCache).
_SERVICE_KEYS = BoundedCache(1 << 16, _new_service_key)


def _service_key(af: int, protocol: int, addr: bytes | None, port: int, fwmark: int) -> m.ServiceKey:
    return _SERVICE_KEYS[(af, protocol, addr, port, fwmark)]


# --------------------------------------------------------------------------
# Value parsers: each mirrors the C library call ipvsadm makes, because the
# accepted spellings are part of the interface ("1.2" is a valid inet_aton
# address, " 80" a valid strtol number).
# --------------------------------------------------------------------------

_SPACE = " \t\n\v\f\r"


def c_strtol(text: str) -> int | None:
    """strtol(s, &end, 10) that must consume the whole string, else None."""
    if text.isdigit() and text.isascii():  # the common case, decided at once
        value = int(text)
        return value if value < 2**63 else None
    s = text.lstrip(_SPACE)
    if not s:
        return None
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if not s or not s.isascii() or not s.isdigit():
        return None
    value = sign * int(s)
    if not -(2**63) <= value < 2**63:
        return None  # ERANGE
    return value


def number_in(text: str, lo: int, hi: int) -> int | None:
    n = c_strtol(text)
    return n if n is not None and lo <= n <= hi else None


def _host_v4(name: str) -> bytes | None:
    try:
        return socket.inet_aton(name)
    except OSError:
        pass
    try:
        return socket.inet_aton(socket.gethostbyname(name))
    except (OSError, UnicodeError, ValueError):
        return None


def _service_port(name: str, protocol: int) -> int | None:
    proto = v.PROTOCOLS.key(protocol)  # the services database's protocol names
    if proto is None:
        return None
    try:
        return socket.getservbyname(name, proto)
    except (OSError, UnicodeError, ValueError):
        return None


def parse_address(text: str, protocol: int):
    """ipvsadm's host[:port] / [v6]:port syntax.

    Returns None when there is no usable address (a port that is neither a
    number nor a service name spoils the whole address, as in ipvsadm), else
    (af, packed, port) with port None when absent.
    """
    try:
        return _parse_address(text, protocol)
    except _BadPort:
        return None


def _parse_address(text: str, protocol: int):
    if not text or (text.isascii() and text.isdigit()):
        return None
    buf = text
    port_text = None
    if buf.startswith("["):
        close = buf.find("]", 1)
        if close < 0 or buf[close + 1:close + 2] != ":":
            return None
        port_text = buf[close + 2:]
        buf = buf[1:close]
    if "\0" in buf:
        return None
    if buf.count(":") > 1:  # IPv6 text has at least two colons
        try:
            return m.AF_INET6, socket.inet_pton(m.AF_INET6, buf), _port(port_text, protocol)
        except OSError:
            pass
    # Not IPv6: a bracketed IPv4 loses its port (ipvsadm re-scans the part
    # inside the brackets for a colon); otherwise the last colon splits.
    port_text = None
    colon = buf.rfind(":")
    if colon >= 0:
        buf, port_text = buf[:colon], buf[colon + 1:]
    packed = _host_v4(buf)
    if packed is None:
        return None
    return m.AF_INET, packed, _port(port_text, protocol)


class _BadPort(Exception):
    pass


def _port(text, protocol):
    if text is None:
        return None
    n = number_in(text, 0, v.PORT_MAX)
    if n is None:
        n = _service_port(text, protocol)
    if n is None:
        raise _BadPort
    return n


# --------------------------------------------------------------------------
# The scanner (popt's rules) and the per-option actions (ipvsadm's rules)
# --------------------------------------------------------------------------


def _scan(argv):
    """Split argv into (opt, value, spelling) for each option and
    (None, word, word) for each leftover word, in order, as popt 1.19's
    poptGetNextOpt sees them.

    ``spelling`` is the word popt last consumed when it handed the option
    over (``poptBadOption``), which is what ipvsadm names in "invalid option
    `...'": the whole cluster for ``-AL``, the value word for
    ``--stop-daemon master``.

    popt's rules, as this scanner follows them:

    * ``--`` makes every later word a leftover; ``-`` and words not
      starting with ``-`` (the empty word too) are leftovers.  With
      POSIXLY_CORRECT or POSIX_ME_HARDER in the environment, the first
      leftover makes every later word one as well.
    * ``--name`` must be a whole long name (no abbreviations);
      ``--name=value`` gives the value, even an empty one; an option
      without an argument refuses ``=`` ("option does not take an
      argument").
    * A single dash starts a cluster of short options (ipvsadm has no
      one-dash long options).  An option without an argument refuses a
      following ``=``.  An option with an argument takes the rest of the
      cluster, without one leading ``=`` (``-w=3``, ``-w3``; ``-w=`` is the
      empty value); at the end of the cluster it takes the next word,
      whatever it looks like, except that an optional argument (``-p``)
      takes no word starting with ``-``.
    * In any option's value, ``!#:+`` stands for the next word that does
      not start with ``-``, which is then skipped as a leftover (popt's
      alias syntax; it applies to plain options too).

    Returns (tokens, error): popt's own error (unknown option, missing or
    unwanted argument) ends the scan; the caller raises it after acting on
    the tokens before it, which is when ipvsadm reports it.
    """
    out = []
    add = out.append
    i, n = 0, len(argv)
    taken = None  # indices of words a "!#:+" consumed (popt's argb)
    rest_leftover = False
    while i < n:
        word = argv[i]
        i += 1
        if taken is not None and (i - 1) in taken:
            continue
        if rest_leftover or word[:1] != "-" or word == "-":
            add((None, word, word))
            if not rest_leftover and _posix_me_harder():
                rest_leftover = True
            continue
        if word == "--":
            rest_leftover = True
            continue
        if word[1] == "-":
            name, eq, inline = word[2:].partition("=")
            opt = LONG_OPTIONS.get(name)
            if opt is None:
                return out, ParseError(f"{word}: unknown option", EXIT_USAGE)
            if opt.arity == NONE:
                if eq:
                    return out, ParseError(f"{word}: option does not take an argument", EXIT_USAGE)
                add((opt, None, word))
                continue
            if eq:
                value = inline
            elif i >= n:
                if opt.arity != OPTIONAL:
                    return out, ParseError(f"{word}: missing argument", EXIT_USAGE)
                value = None
            elif opt.arity == OPTIONAL and argv[i][:1] == "-":
                value = None
            else:
                value = argv[i]
                i += 1
            if value is not None and "!#:+" in value:
                value, taken = _expand_next_arg(value, argv, i, taken)
            add((opt, value, argv[i - 1]))
            continue
        j, length = 1, len(word)
        while j < length:
            ch = word[j]
            j += 1
            opt = SHORT_OPTIONS.get(ch)
            if opt is None:
                # popt names the whole word ("-Lnq"), not just the letter.
                return out, ParseError(f"{word}: unknown option", EXIT_USAGE)
            if opt.arity == NONE:
                if word[j:j + 1] == "=":
                    return out, ParseError(f"{word}: option does not take an argument", EXIT_USAGE)
                add((opt, None, word))
                continue
            if j < length:
                value = word[j + 1:] if word[j] == "=" else word[j:]
            elif i >= n:
                if opt.arity != OPTIONAL:
                    return out, ParseError(f"{word}: missing argument", EXIT_USAGE)
                value = None
            elif opt.arity == OPTIONAL and argv[i][:1] == "-":
                value = None
            else:
                value = argv[i]
                i += 1
            if value is not None and "!#:+" in value:
                value, taken = _expand_next_arg(value, argv, i, taken)
            add((opt, value, argv[i - 1]))
            break
    return out, None


def _posix_me_harder() -> bool:
    # Read only when a leftover word appears, which a valid line rarely has.
    import os

    return "POSIXLY_CORRECT" in os.environ or "POSIX_ME_HARDER" in os.environ


def _expand_next_arg(value: str, argv, start: int, taken):
    """popt's expandNextArg: every "!#:+" in an option's value becomes the
    first later word that does not start with "-" (and was not taken
    before), and that word is taken out of the line.  Without such a word
    the text stays as it is."""
    taken = set() if taken is None else taken
    for k in range(start, len(argv)):
        if k not in taken and argv[k][:1] != "-":
            taken.add(k)
            return value.replace("!#:+", argv[k]), taken
    return value, taken


def _set_option(cmd: Command, name: str) -> None:
    if name in cmd.options:
        raise ParseError(f"multiple '{name}' options specified")
    cmd.options.add(name)


def _daemon_state(value: str, message: str) -> int:
    state = v.DAEMONS.numbers.get(value)
    if state is None:
        raise ParseError(message)
    return state


# action -> (kind, argument), split once rather than on every option of every line
_ACTIONS = {o.action: tuple(o.action.partition(":")[::2]) for o in OPTIONS}


def _apply_option(cmd: Command, opt: Opt, value, spelling: str, state: dict) -> None:
    action = opt.action
    kind, arg = _ACTIONS[action]
    if kind == "cmd":
        # A second command word is not an option ipvsadm knows in that place.
        raise ParseError(f"invalid option `{spelling}'")
    if kind == "service":
        _set_option(cmd, "service-address")
        if arg == "fwmark":
            cmd.af = m.AF_INET
            cmd.protocol = m.IPPROTO_TCP
            n = c_strtol(value)
            if n is None or n <= 0 or n > UINT_MAX:
                raise ParseError(f"invalid fwmark value `{value}' specified")
            cmd.fwmark = n
            return
        cmd.protocol = v.PROTOCOLS.numbers[arg]
        parsed = parse_address(value, cmd.protocol)
        if parsed is None:
            raise ParseError("illegal virtual server address[:port] specified")
        af, packed, port = parsed
        cmd.af, cmd.addr = af, packed
        if af == m.AF_INET6:
            cmd.netmask = 128
        if port is not None:
            cmd.port = port
        return
    if kind == "scheduler":
        _set_option(cmd, "scheduler")
        cmd.scheduler = value[:SCHEDNAME_MAX]
        return
    if kind == "persistent":
        _set_option(cmd, "persistent")
        cmd.flags |= m.SVC_F_PERSISTENT
        if value is None:
            cmd.timeout = m.DEFAULT_PERSISTENCE_TIMEOUT
        else:
            t = number_in(value, 1, MAX_TIMEOUT)
            if t is None:
                raise ParseError(f"invalid timeout value `{value}' specified")
            cmd.timeout = t
        return
    if kind == "netmask":
        _set_option(cmd, "netmask")
        if cmd.af != m.AF_INET6:
            packed = _host_v4(value)
            if packed is None:
                raise ParseError("illegal virtual server persistent mask specified")
            cmd.netmask = int.from_bytes(packed, "big")
        else:
            bits = _c_atoi(value) & UINT_MAX
            if not 1 <= bits <= 128:
                raise ParseError("illegal ipv6 netmask specified")
            cmd.netmask = bits
        return
    if kind == "real-server":
        _set_option(cmd, "real-server")
        parsed = parse_address(value, cmd.protocol)
        if parsed is None:
            raise ParseError("illegal real server address[:port] specified")
        af, packed, port = parsed
        cmd.dest_af, cmd.dest_addr = af, packed
        # Without a port of its own the real server takes the service's
        # port as it is at this point of the line.
        cmd.dest_port = cmd.port if port is None else port
        return
    if kind == "fwd":
        _set_option(cmd, "forwarding-method")
        cmd.fwd = v.FORWARDS.numbers[arg]
        return
    if kind in ("weight", "u-threshold", "l-threshold", "syncid", "mcast-port",
                "mcast-ttl", "sync-maxlen", "tun-port"):
        lo, hi, attr, label = _NUMERIC[kind]
        _set_option(cmd, kind)
        n = number_in(value, lo, hi)
        if n is None:
            raise ParseError(f"illegal {label} specified")
        setattr(cmd, attr, n)
        return
    if kind == "flag":
        _set_option(cmd, arg)
        if arg != "connection" and arg != "timeout" and arg != "daemon":
            setattr(cmd.fmt, arg.replace("-", "_"), True)
        return
    if kind == "sort":
        return  # accepted and ignored, as in ipvsadm
    if kind == "mcast-interface":
        _set_option(cmd, "mcast-interface")
        cmd.mcast_ifn = value[:IFNAME_MAX]
        return
    if kind == "ipv6":
        if not cmd.fwmark:
            raise ParseError("-6 used before -f\n")
        cmd.af = m.AF_INET6
        cmd.netmask = 128
        return
    if kind == "ops":
        _set_option(cmd, "ops")
        cmd.flags |= m.SVC_F_ONEPACKET
        return
    if kind == "pe":
        _set_option(cmd, "pe")
        cmd.pe_name = value[:PENAME_MAX]
        return
    if kind == "sched-flags":
        _set_option(cmd, "sched-flags")
        state["sched_flags"] = value
        return
    if kind == "mcast-group":
        _set_option(cmd, "mcast-group")
        cmd.mcast_group = _mcast_group(value)
        return
    if kind == "tun-type":
        _set_option(cmd, "tun-type")
        tun_type = v.TUNNELS.numbers.get(value)
        if tun_type is None:
            raise ParseError("illegal tunnel type specified")
        cmd.tun_type = tun_type
        return
    if kind == "tun-flag":
        _set_option(cmd, opt.long)
        cmd.tun_flags |= int(arg)
        return
    raise AssertionError(action)  # pragma: no cover - table and code disagree


_NUMERIC = {
    # Debian's ipvsadm 1.31 takes any int weight (0..INT_MAX), not 0..65535.
    "weight": (0, INT_MAX, "weight", "weight"),
    "u-threshold": (0, INT_MAX, "u_threshold", "u_threshold"),
    "l-threshold": (0, INT_MAX, "l_threshold", "l_threshold"),
    "syncid": (0, v.SYNCID_MAX, "syncid", "syncid"),
    "mcast-port": (1, v.PORT_MAX, "mcast_port", "mcast-port"),
    "mcast-ttl": (1, v.TTL_MAX, "mcast_ttl", "mcast-ttl"),
    "sync-maxlen": (1, v.SYNC_MAXLEN_MAX, "sync_maxlen", "sync-maxlen"),
    "tun-port": (1, v.PORT_MAX, "tun_port", "tunnel port"),
}


def _c_atoi(text: str) -> int:
    """atoi(): leading number, 0 when there is none (wraps like a C int)."""
    s = text.lstrip(_SPACE)
    k = 0
    if s[:1] in ("+", "-"):
        k = 1
    while k < len(s) and s[k].isascii() and s[k].isdigit():
        k += 1
    digits = s[:k]
    if digits in ("", "+", "-"):
        return 0
    v = int(digits)
    return ((v + 2**31) % 2**32) - 2**31


def _mcast_group(value: str) -> str:
    if ":" in value:
        try:
            packed = socket.inet_pton(m.AF_INET6, value)
        except OSError:
            packed = None
        if packed is None or packed[0] != 0xFF:
            raise ParseError(f"invalid IPv6 mcast-group `{value}'")
        return socket.inet_ntop(m.AF_INET6, packed)
    try:
        packed = socket.inet_pton(m.AF_INET, value)
    except OSError:
        packed = None
    if packed is None or not 224 <= packed[0] <= 239:
        raise ParseError(f"invalid IPv4 mcast-group `{value}'")
    return value


def _sched_flags(scheduler: str, text: str) -> int:
    scheduler = scheduler or m.DEFAULT_SCHEDULER
    flags = 0
    words = [w for w in text.split(",") if w]  # strtok skips empty fields
    if not words:
        # ipvsadm 1.31 crashes on a -b made only of commas; refuse it instead.
        raise ParseError(f"invalid scheduler flag `{text}'")
    for word in words:
        flag = v.SCHED_FLAGS.get(word)
        if flag is None:
            raise ParseError(f"invalid scheduler flag `{word}'")
        flags |= flag.bit
        if flag.scheduler is not None and flag.scheduler != scheduler:
            raise ParseError(f"incompatible scheduler flag `{word}'")
    return flags


def _check_rule(rule: Rule, options: set, subject: str, names=OPTION_NAMES):
    """Apply one row of a rules table in ipvsadm's option order."""
    if (rule.required <= options and options <= _ALLOWED[rule]
            and len(options & rule.exclusive) <= 1):
        return  # valid: no need to find which error ipvsadm would name first
    first_exclusive = None
    for name in names:
        if name not in options:
            if name in rule.required:
                raise ParseError(f"You need to supply the '{name}' option for the {subject}")
            continue
        if name in rule.exclusive:
            if first_exclusive is None:
                first_exclusive = name
                continue
            raise ParseError(f"The option '{name}' conflicts with the "
                             f"'{first_exclusive}' option in the {subject}")
        elif name not in rule.required and name not in rule.optional:
            raise ParseError(f"Illegal '{name}' option with the {subject}")


def parse(argv: list[str]) -> Command:
    """Parse one ipvsadm command line (without the program name)."""
    tokens, scan_error = _scan(argv)
    # popt hands over the first option wherever it stands; words before it
    # are leftovers like any other.  ipvsadm wants that option to be a command.
    leftovers = []
    k, n = 0, len(tokens)
    while k < n and tokens[k][0] is None:
        leftovers.append(tokens[k][1])
        k += 1
    if k == n or not tokens[k][0].action.startswith("cmd:"):
        raise ParseError("", EXIT_USAGE, try_help=True)
    opt, value, _ = tokens[k]
    name = opt.action[4:]
    cmd = Command(name=name)
    if name in ("help", "version"):
        return cmd  # ipvsadm answers these at once, whatever follows
    if name == "start-daemon":
        cmd.daemon_state = _daemon_state(value, "illegal start-daemon parameter specified")
    elif name == "stop-daemon":
        cmd.daemon_state = _daemon_state(value, "illegal start_daemon specified")

    state: dict = {}
    for opt, value, spelling in tokens[k + 1:]:
        if opt is None:
            leftovers.append(value)
        else:
            _apply_option(cmd, opt, value, spelling, state)
    if scan_error is not None:
        raise scan_error

    if name == "set":
        if len(leftovers) < 3:
            raise ParseError("--set option requires 3 timeout values")
        values = []
        for text in leftovers[:3]:
            t = number_in(text, 0, MAX_TIMEOUT)
            if t is None:
                raise ParseError(f"invalid timeout value `{text}' specified")
            values.append(t)
        cmd.timeouts = m.Timeouts(*values)
        leftovers = leftovers[3:]
    if leftovers:
        raise ParseError(f"unexpected argument {leftovers[0]}")
    if "sched_flags" in state and state["sched_flags"]:
        cmd.flags &= ~m.SVC_F_SCHED_MASK
        cmd.flags |= _sched_flags(cmd.scheduler, state["sched_flags"])
    _check_rule(COMMAND_RULES[name], cmd.options, f"'{name}' command")
    _finish(cmd)
    return cmd


def named(service: list[tuple[str, str]], ipv6: bool = False, server: str | None = None) -> Command:
    """The service (and real server) that ipvsadm's options name, parsed as
    ipvsadm parses them, for the subcommands that take those options in
    their own syntax (``list -t ADDR``, ``drain -f MARK -6 -r SERVER``):
    ``service`` as (spelling, value) pairs, e.g. [("-t", "10.0.0.1:80")].
    ParseError as ``parse`` would raise it for the same words."""
    cmd = Command("list" if server is None else "delete-server")
    state: dict = {}
    for spelling, value in service:
        opt = LONG_OPTIONS[spelling[2:]] if spelling[:2] == "--" else SHORT_OPTIONS[spelling[1:]]
        _apply_option(cmd, opt, value, spelling, state)
    if ipv6:
        _apply_option(cmd, LONG_OPTIONS["ipv6"], None, "-6", state)
    if server is not None:
        _apply_option(cmd, LONG_OPTIONS["real-server"], server, "-r", state)
    _check_rule(COMMAND_RULES[cmd.name], cmd.options, f"'{cmd.name}' command")
    _finish(cmd)
    return cmd


def _finish(cmd: Command) -> None:
    """The checks and defaults ipvsadm applies after the rules table."""
    name = cmd.name
    if name in ("add-service", "edit-service"):
        if not cmd.fwmark and not cmd.port and not cmd.flags & m.SVC_F_PERSISTENT:
            raise ParseError("Zero port specified for non-persistent service")
        if cmd.flags & m.SVC_F_ONEPACKET and not cmd.fwmark and cmd.protocol != m.IPPROTO_UDP:
            raise ParseError("One-Packet Scheduling is only for UDP virtual services")
        if not cmd.scheduler:
            cmd.scheduler = m.DEFAULT_SCHEDULER
    if name == "start-daemon" and not cmd.mcast_ifn:
        cmd.mcast_ifn = v.DEFAULT_MCAST_IFN
    if name in ("add-server", "edit-server"):
        if not cmd.fwmark and cmd.fwd in (m.FWD_TUNNEL, m.FWD_ROUTE):
            cmd.dest_port = cmd.port
        if cmd.dest_af != cmd.af and cmd.fwd != m.FWD_TUNNEL:
            raise ParseError("Different address family is allowed only for tunneling servers")
        if cmd.fwd != m.FWD_TUNNEL and cmd.options & _TUNNEL_ANY:
            raise ParseError("Tunnel options conflict with forward method")
        _check_rule(TUNNEL_RULES[cmd.tun_type], cmd.options & _TUNNEL_OPTION_SET,
                    f"'{v.TUNNELS.key(cmd.tun_type)}' tunnel type", TUNNEL_OPTIONS)
    if name == "list":
        o = cmd.options
        if ((o & {"connection", "timeout", "daemon"} and o & {"stats", "rate", "thresholds"})
                or (o & {"timeout", "daemon"} and "persistent-conn" in o)):
            raise ParseError("options conflicts in the list command")
    if name == "save":
        cmd.fmt.rule = True


# --------------------------------------------------------------------------
# Restore streams
# --------------------------------------------------------------------------


_RESTORE_SEPARATORS = str.maketrans("\t\r\n", "   ")


def split_restore_line(line: str) -> list[str]:
    """Words of one -R line as ipvsadm splits them: on spaces, tabs and CRs
    only, with every word "ipvsadm" dropped (a saved line may start with it)."""
    if line.isascii() and line.isprintable():
        # No tab, CR or other control character: the only separator is the
        # space, and str.split() (in C, no empty words) splits exactly so.
        words = line.split()
    else:
        words = [w for w in line.translate(_RESTORE_SEPARATORS).split(" ") if w]
    return [w for w in words if w != "ipvsadm"] if "ipvsadm" in line else words
