"""ipvsctl's vocabulary: every value IPVS knows by a number, with all its names.

Strategy: each fact is written once, here, as one row per value: the
kernel's number and every way the value is spelled (what ipvsadm prints
in a listing, the key of the JSON schema, the option that asks for it,
how ``-S`` writes it, the word the views for people use).  Every other
module looks values and words up here, so that a name can never differ
between the parser, the renderers and the JSON reader and writer.  The
limits of ipvsadm's values and the exit statuses are here too.

Stdlib only and cheap: it is imported by every command, so rows are plain
slotted objects (no dataclasses, no enum: both would cost start-up time,
tests/unit/test_lazy_imports.py).
"""

from __future__ import annotations

# --------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------

# Linux's address family numbers (socket.AF_INET, socket.AF_INET6), written
# out: socket.py's enum classes would cost start-up time on every command.
AF_INET = 2
AF_INET6 = 10

# IP protocol numbers of the three protocols IPVS balances.
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_SCTP = 132

# Forwarding methods: the low bits of a real server's conn_flags
# (IP_VS_CONN_F_MASQ ... IP_VS_CONN_F_BYPASS); the kernel reports other flag
# bits beside them, which FWD_MASK strips.
FWD_MASQ = 0
FWD_LOCAL = 1
FWD_TUNNEL = 2
FWD_ROUTE = 3
FWD_BYPASS = 4
FWD_MASK = 0x0007

# Service flags (IP_VS_SVC_F_*).  HASHED is the kernel's own bookkeeping: it
# reports it on every listed service and sets it itself on add and edit.
SVC_F_PERSISTENT = 0x0001
SVC_F_HASHED = 0x0002
SVC_F_ONEPACKET = 0x0004
SVC_F_SCHED1 = 0x0008
SVC_F_SCHED2 = 0x0010
SVC_F_SCHED3 = 0x0020
SVC_F_SCHED_MASK = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3

# Tunnel types and encapsulation (checksum) modes of tunnelled real servers.
TUN_IPIP = 0
TUN_GUE = 1
TUN_GRE = 2
TUN_F_NOCSUM = 0
TUN_F_CSUM = 1
TUN_F_REMCSUM = 2

# Sync daemon states (IP_VS_STATE_MASTER, IP_VS_STATE_BACKUP).
DAEMON_MASTER = 1
DAEMON_BACKUP = 2

# ipvsadm's defaults.
DEFAULT_SCHEDULER = "wlc"
DEFAULT_PERSISTENCE_TIMEOUT = 360  # -p without a value
DEFAULT_MCAST_IFN = "eth0"  # --start-daemon without --mcast-interface
IPV4_FULL_MASK = 0xFFFFFFFF

# --------------------------------------------------------------------------
# Limits of the values ipvsadm accepts
# --------------------------------------------------------------------------

MAX_TIMEOUT = 86400 * 31  # ipvsadm's ceiling for any timeout: 31 days
MAX_SECONDS = 10**9  # ipvsctl's own intervals, waits and drains: ~31 years, what time.sleep and locks take
INT_MAX = 2**31 - 1
UINT_MAX = 2**32 - 1
PORT_MAX = 65535
SCHEDNAME_MAX = 15  # the kernel's name buffers are 16 bytes with the NUL
IFNAME_MAX = 15
PENAME_MAX = 16  # ipvsadm copies up to 16 bytes for --pe (no NUL kept)
SYNCID_MAX = 255
TTL_MAX = 255
SYNC_MAXLEN_MAX = 65535 - 20 - 8  # an IPv4 datagram less its IP and UDP headers

# --------------------------------------------------------------------------
# Exit statuses (ipvsadm's, and those of ipvsctl's own subcommands)
# --------------------------------------------------------------------------

EXIT_OK = 0
EXIT_READ_FAILED = 1  # a list whose service or table could not be read
EXIT_DIFFERS = 1  # diff, apply: the table differs from the file
EXIT_TIMED_OUT = 1  # drain: the real server still had connections
EXIT_PROBLEMS = 1  # doctor: a problem was found
EXIT_INVALID = 2  # a value, option, line or file that is refused: nothing changed
EXIT_USAGE = 255  # a malformed ipvsadm command line ("Try ... -h")
EXIT_KERNEL = 255  # the kernel refused a change (ipvsadm returns -1)
EXIT_WRITE_FAILED = 1  # standard output could not be written ("write error", as coreutils)
EXIT_FAILED = 1  # any other failure that says only a message (Python's SystemExit("..."))
EXIT_SIGNALLED = 128  # ended by signal N: 128 + N, as a shell reports it
EXIT_INTERRUPTED = EXIT_SIGNALLED + 2  # Ctrl-C (SIGINT)

# --------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------

NULL = "(null)"  # what ipvsadm prints for a value it has no word for


class Term:
    """One value and its names (None where it has none):

    ``key``: its JSON key, and the word ipvsctl's own options take;
    ``label``: what ipvsadm prints for it in a listing;
    ``name``: the word the views for people show (ipvsadm's label unless
    it has none);
    ``option``, ``short``: the ipvsadm options that ask for it;
    ``rule``: how ``-S`` writes it.
    """

    __slots__ = ("number", "key", "label", "name", "option", "short", "rule")

    def __init__(self, number: int, key: str, label: str | None = None, name: str | None = None,
                 option: str | None = None, short: str | None = None, rule: str | None = None):
        self.number = number
        self.key = key
        self.label = label
        self.name = name if name is not None else label
        self.option = option
        self.short = short
        self.rule = rule

    def __repr__(self) -> str:
        return f"Term({self.number!r}, {self.key!r})"


class Words:
    """The terms of one kind, looked up by kernel number or by key."""

    __slots__ = ("terms", "numbers", "_by_number")

    def __init__(self, *terms: Term):
        self.terms = terms
        self.numbers = {t.key: t.number for t in terms}  # key -> number
        self._by_number = {t.number: t for t in terms}

    def __iter__(self):
        return iter(self.terms)

    def get(self, number: int) -> Term | None:
        return self._by_number.get(number)

    def number_of_label(self, label: str, default=None):
        """The number ipvsadm's listing word ``label`` stands for."""
        return next((t.number for t in self.terms if t.label == label), default)

    def key(self, number: int, default=None):
        t = self._by_number.get(number)
        return t.key if t is not None else default

    def label(self, number: int, default=None):
        t = self._by_number.get(number)
        return t.label if t is not None and t.label is not None else default

    def name(self, number: int, default=None):
        t = self._by_number.get(number)
        return t.name if t is not None and t.name is not None else default

    def rule(self, number: int, default=None):
        t = self._by_number.get(number)
        return t.rule if t is not None and t.rule is not None else default


FAMILIES = Words(
    Term(AF_INET, "inet", name="IPv4"),
    Term(AF_INET6, "inet6", name="IPv6"),
)

PROTOCOLS = Words(
    Term(IPPROTO_TCP, "tcp", "TCP", option="--tcp-service", short="-t", rule="-t"),
    Term(IPPROTO_UDP, "udp", "UDP", option="--udp-service", short="-u", rule="-u"),
    Term(IPPROTO_SCTP, "sctp", "SCTP", option="--sctp-service", rule="--sctp-service"),
)

FORWARDS = Words(
    Term(FWD_MASQ, "masq", "Masq", option="--masquerading", short="-m", rule="-m"),
    # ipvsadm saves a Local real server as -g: the kernel chose Local itself.
    Term(FWD_LOCAL, "local", "Local", rule="-g"),
    Term(FWD_TUNNEL, "tunnel", "Tunnel", option="--ipip", short="-i", rule="-i"),
    Term(FWD_ROUTE, "route", "Route", option="--gatewaying", short="-g", rule="-g"),
    # The kernel accepts Bypass; ipvsadm has no word for it ("(null)").
    Term(FWD_BYPASS, "bypass", name="Bypass"),
)

# --tun-type's values; ipvsadm's --tun-info shows the same words.
TUNNELS = Words(
    Term(TUN_IPIP, "ipip", "ipip"),
    Term(TUN_GUE, "gue", "gue"),
    Term(TUN_GRE, "gre", "gre"),
)

# The label is --tun-info's short form (gue:6080:+c).
CHECKSUMS = Words(
    Term(TUN_F_NOCSUM, "nocsum", "-c", name="nocsum", option="--tun-nocsum", rule="--tun-nocsum"),
    Term(TUN_F_CSUM, "csum", "+c", name="csum", option="--tun-csum", rule="--tun-csum"),
    Term(TUN_F_REMCSUM, "remcsum", "r+c", name="remcsum", option="--tun-remcsum", rule="--tun-remcsum"),
)

DAEMONS = Words(
    Term(DAEMON_MASTER, "master", "master"),
    Term(DAEMON_BACKUP, "backup", "backup"),
)


class SchedFlag:
    """A -b word: its SVC_F_SCHED* bit and the scheduler it belongs to
    (None: any scheduler)."""

    __slots__ = ("name", "bit", "scheduler")

    def __init__(self, name: str, bit: int, scheduler: str | None = None):
        self.name = name
        self.bit = bit
        self.scheduler = scheduler


SCHED_FLAGS = {f.name: f for f in (
    SchedFlag("flag-1", SVC_F_SCHED1),
    SchedFlag("flag-2", SVC_F_SCHED2),
    SchedFlag("flag-3", SVC_F_SCHED3),
    SchedFlag("sh-fallback", SVC_F_SCHED1, "sh"),
    SchedFlag("sh-port", SVC_F_SCHED2, "sh"),
    SchedFlag("mh-fallback", SVC_F_SCHED1, "mh"),
    SchedFlag("mh-port", SVC_F_SCHED2, "mh"),
)}


def sched_flag_names(scheduler: str, flags: int) -> list[str]:
    """The -b words of ``flags`` as ipvsadm lists them: the scheduler's own
    names (sh, mh), else flag-1 to flag-3."""
    own = [f for f in SCHED_FLAGS.values() if f.scheduler == scheduler]
    return [f.name for f in (own or [f for f in SCHED_FLAGS.values() if f.scheduler is None])
            if flags & f.bit]


# The kernel's own schedulers and persistence engines (a module ip_vs_NAME
# or ip_vs_pe_NAME each).  twos came with Linux 6.2.
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf",
              "mh", "twos")
SCHEDULERS_SINCE = {"twos": "Linux 6.2"}
ENGINES = ("sip",)
