"""The ipvsadm command-line grammar, defined once as data, and its parser.

Strategy: ipvsadm's surface is a flat option list (parsed by popt) plus a
table saying which command accepts which option.  Both are data here:
``OPTIONS`` (spelling, arity, meaning) and ``COMMAND_RULES`` (per command:
required, allowed and mutually exclusive options).  One scanner walks argv the
way popt does (ipvsctl.popt: bundled short options, ``--long=value``, optional
arguments, leftover words), one function per kind of option turns a value
into the command's fields (values read as the C library reads them:
ipvsctl.cvalues), and one checker applies the rules in ipvsadm's order, so that
the first error reported for a bad line is the one ipvsadm reports, word for
word, with its exit status.  The same ``parse`` serves the command line and
every line of a ``-R`` stream; it does no I/O except the name look-ups
ipvsadm also does (host and service names), and it never touches the kernel.

Exit statuses follow ipvsadm: 2 for a rejected value or combination, 255 for
a malformed command line ("Try ... -h"), popt errors and kernel errors.
"""

from __future__ import annotations

from ipvsctl import actions
from ipvsctl import model as m
from ipvsctl import vocab as v
from ipvsctl.command import Command
from ipvsctl.cvalues import number_in
from ipvsctl.popt import NONE, OPTIONAL, REQUIRED, Opt, ParseError, scan
from ipvsctl.vocab import EXIT_USAGE, MAX_TIMEOUT

# --------------------------------------------------------------------------
# The options.  ``name`` is the option's name in ipvsadm's messages (several
# spellings share one name: -t/-u/--sctp-service/-f are all
# "service-address"); ``order`` is its place in the rule check, which decides
# which error wins when a line has several.
# --------------------------------------------------------------------------

# Option names in ipvsadm's check order.
OPTION_NAMES = (
    "numeric", "connection", "service-address", "scheduler", "persistent",
    "netmask", "real-server", "forwarding-method", "weight", "u-threshold",
    "l-threshold", "mcast-interface", "timeout", "daemon", "stats", "rate",
    "thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops", "pe",
    "sched-flags", "mcast-group", "mcast-port", "mcast-ttl", "sync-maxlen",
    "tun-info", "tun-type", "tun-port", "tun-nocsum", "tun-csum", "tun-remcsum",
)


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


_ACTIONS = actions.table(OPTIONS)


def _apply_option(cmd: Command, opt: Opt, value, spelling: str, state: dict) -> None:
    act, arg = _ACTIONS[opt.action]
    act(cmd, arg, value, spelling, state)


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
    tokens, scan_error = scan(argv, LONG_OPTIONS, SHORT_OPTIONS)
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
        cmd.daemon_state = actions.daemon_state(value, "illegal start-daemon parameter specified")
    elif name == "stop-daemon":
        cmd.daemon_state = actions.daemon_state(value, "illegal start_daemon specified")

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
        cmd.flags |= actions.sched_flags(cmd.scheduler, state["sched_flags"])
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
    only, each cut at a NUL and cut in pieces of 4096 bytes, with every word
    "ipvsadm" dropped (a saved line may start with it)."""
    if line.isascii() and line.isprintable():
        # No tab, CR or other control character: the only separator is the
        # space, and str.split() (in C, no empty words) splits exactly so.
        words = line.split()
    else:
        words = [w for w in line.translate(_RESTORE_SEPARATORS).split(" ") if w]
        if "\0" in line:
            # ipvsadm reads each word into a C string, which ends at its
            # first NUL: "a\0b" is the word "a", and a word that starts with
            # a NUL is the empty word.
            words = [w.partition("\0")[0] for w in words]
    if len(line) > RESTORE_WORD_MAX or not line.isascii():
        words = [piece for w in words for piece in _word_pieces(w)]
    return [w for w in words if w != "ipvsadm"] if "ipvsadm" in line else words


#: ipvsadm scans a -R word into a buffer of 4096 bytes: a longer word goes on
#: as the next word, 4096 bytes at a time.
RESTORE_WORD_MAX = 4096


def _word_pieces(word: str) -> list[str]:
    if len(word) <= RESTORE_WORD_MAX // 4:  # 4 bytes a character at most
        return [word]
    raw = word.encode("utf-8", "surrogateescape")
    if len(raw) <= RESTORE_WORD_MAX:
        return [word]
    return [raw[i:i + RESTORE_WORD_MAX].decode("utf-8", "surrogateescape")
            for i in range(0, len(raw), RESTORE_WORD_MAX)]
