"""What each ipvsadm option does to the command it is on: one function per
kind of option (the part of ``popt.Opt.action`` before the colon), given the
part after it, the option's value and the word that spelt it.  The errors
are ipvsadm's, word for word (ipvsctl.grammar decides which comes first).
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py's enum classes cost ~6 ms of start-up

from ipvsctl import model as m
from ipvsctl import vocab as v
from ipvsctl.command import Command
from ipvsctl.cvalues import c_atoi, c_prefix, c_strtol, host_v4, number_in, parse_address
from ipvsctl.popt import ParseError
from ipvsctl.vocab import IFNAME_MAX, INT_MAX, MAX_TIMEOUT, PENAME_MAX, SCHEDNAME_MAX, UINT_MAX


def _set_option(cmd: Command, name: str) -> None:
    if name in cmd.options:
        raise ParseError(f"multiple '{name}' options specified")
    cmd.options.add(name)


def daemon_state(value: str, message: str) -> int:
    state = v.DAEMONS.numbers.get(value)
    if state is None:
        raise ParseError(message)
    return state


def _service(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
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


def _scheduler(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    _set_option(cmd, "scheduler")
    cmd.scheduler = c_prefix(value, SCHEDNAME_MAX)


def _persistent(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    _set_option(cmd, "persistent")
    cmd.flags |= m.SVC_F_PERSISTENT
    if value is None:
        cmd.timeout = m.DEFAULT_PERSISTENCE_TIMEOUT
        return
    t = number_in(value, 1, MAX_TIMEOUT)
    if t is None:
        raise ParseError(f"invalid timeout value `{value}' specified")
    cmd.timeout = t


def _netmask(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    _set_option(cmd, "netmask")
    if cmd.af != m.AF_INET6:
        packed = host_v4(value)
        if packed is None:
            raise ParseError("illegal virtual server persistent mask specified")
        cmd.netmask = int.from_bytes(packed, "big")
        return
    bits = c_atoi(value) & UINT_MAX
    if not 1 <= bits <= 128:
        raise ParseError("illegal ipv6 netmask specified")
    cmd.netmask = bits


def _real_server(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    _set_option(cmd, "real-server")
    parsed = parse_address(value, cmd.protocol)
    if parsed is None:
        raise ParseError("illegal real server address[:port] specified")
    af, packed, port = parsed
    cmd.dest_af, cmd.dest_addr = af, packed
    # Without a port of its own the real server takes the service's
    # port as it is at this point of the line.
    cmd.dest_port = cmd.port if port is None else port


def _fwd(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    _set_option(cmd, "forwarding-method")
    cmd.fwd = v.FORWARDS.numbers[arg]


def _number(cmd: Command, kind: str, value, spelling: str, state: dict) -> None:
    lo, hi, attr, label = _NUMERIC[kind]
    _set_option(cmd, kind)
    n = number_in(value, lo, hi)
    if n is None:
        raise ParseError(f"illegal {label} specified")
    setattr(cmd, attr, n)


def _flag(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    _set_option(cmd, arg)
    if arg != "connection" and arg != "timeout" and arg != "daemon":
        setattr(cmd.fmt, arg.replace("-", "_"), True)


def _sort(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    pass  # accepted and ignored, as in ipvsadm


def _mcast_interface(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    _set_option(cmd, "mcast-interface")
    cmd.mcast_ifn = c_prefix(value, IFNAME_MAX)


def _ipv6(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    if not cmd.fwmark:
        raise ParseError("-6 used before -f\n")
    cmd.af = m.AF_INET6
    cmd.netmask = 128


def _ops(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    _set_option(cmd, "ops")
    cmd.flags |= m.SVC_F_ONEPACKET


def _pe(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    _set_option(cmd, "pe")
    cmd.pe_name = c_prefix(value, PENAME_MAX)


def _sched_flags_option(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    _set_option(cmd, "sched-flags")
    state["sched_flags"] = value  # read once the scheduler is known (parse)


def _mcast_group_option(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    _set_option(cmd, "mcast-group")
    cmd.mcast_group = _mcast_group(value)


def _tun_type(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    _set_option(cmd, "tun-type")
    tun_type = v.TUNNELS.numbers.get(value)
    if tun_type is None:
        raise ParseError("illegal tunnel type specified")
    cmd.tun_type = tun_type


def _tun_flag(cmd: Command, arg: tuple[str, int], value, spelling: str, state: dict) -> None:
    name, bit = arg
    _set_option(cmd, name)
    cmd.tun_flags |= bit


def _second_command(cmd: Command, arg: str, value, spelling: str, state: dict) -> None:
    # A second command word is not an option ipvsadm knows in that place.
    raise ParseError(f"invalid option `{spelling}'")


#: The action of each kind of option.
_KINDS = {
    "cmd": _second_command, "service": _service, "scheduler": _scheduler, "persistent": _persistent,
    "netmask": _netmask, "real-server": _real_server, "fwd": _fwd, "flag": _flag, "sort": _sort,
    "mcast-interface": _mcast_interface, "ipv6": _ipv6, "ops": _ops, "pe": _pe,
    "sched-flags": _sched_flags_option, "mcast-group": _mcast_group_option, "tun-type": _tun_type,
    "tun-flag": _tun_flag,
    **{kind: _number for kind in ("weight", "u-threshold", "l-threshold", "syncid", "mcast-port",
                                  "mcast-ttl", "sync-maxlen", "tun-port")},
}

def table(options) -> dict:
    """Opt.action -> (its function, its argument), for each of ``options``:
    split once rather than on every option of every line.  A numeric
    option's argument is its kind, a tunnel flag's its name and bit."""
    out = {}
    for o in options:
        kind, arg = o.action.partition(":")[::2]
        out[o.action] = (_KINDS[kind], (o.long, int(arg)) if kind == "tun-flag" else arg or kind)
    return out


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


def _mcast_group(value: str) -> str:
    if ":" in value:
        try:
            packed = socket.inet_pton(m.AF_INET6, value)
        except (OSError, UnicodeError):
            packed = None
        if packed is None or packed[0] != 0xFF:
            raise ParseError(f"invalid IPv6 mcast-group `{value}'")
        return socket.inet_ntop(m.AF_INET6, packed)
    try:
        packed = socket.inet_pton(m.AF_INET, value)
    except (OSError, UnicodeError):
        packed = None
    if packed is None or not 224 <= packed[0] <= 239:
        raise ParseError(f"invalid IPv4 mcast-group `{value}'")
    return value


def sched_flags(scheduler: str, text: str) -> int:
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
