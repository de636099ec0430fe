"""``ipvsctl conns``: the connection table, filtered, summarised, streamed.

Strategy: IPVS has no netlink dump of connections; like ``ipvsadm -c`` we
read the namespace's /proc/net/ip_vs_conn.  A busy director holds millions
of entries, so nothing here holds one object per connection:

* the file is read a line at a time through a large buffer (one read()
  of 1 MiB asks the kernel's seq_file for many entries at once; the kernel
  walks its hash table from the start at every read, so small reads cost
  quadratic time on a big table);
* filters compare the file's own words: the filter's address is turned
  once into the kernel's spelling (``%08X`` for IPv4, eight groups of four
  hex digits for IPv6, ``%04X`` ports), so a line that does not match is
  never parsed;
* ``--summary`` and ``--top`` count into a dict keyed by the raw words of
  (protocol, virtual address and port, real server, state): its size is
  bounded by the table (services x real servers x states), not by the
  number of connections, and each distinct key is turned into text once,
  at the end;
* the listing and its JSON are written line by line as the file is read
  (``render.connections.parse_line``, the parser of ``-c``, for each line
  shown).

Every line of the file is an entry: connections and persistence templates
(client port 0, state NONE) alike, as ``ipvsadm -Lc`` shows them.  What
the kernel records is the virtual address and port a client reached, so a
connection of a firewall-mark service is found under the address it was
sent to (the file does not name the mark).
"""

from __future__ import annotations

from ipvsctl import model as m
from ipvsctl import vocab as v
from ipvsctl.netlink.constants import IP_VS_CONN, IP_VS_CONN_FILE
from ipvsctl.render.connections import _addr, _hex, parse_line

READ_BUFFER = 1 << 20
PROTOCOLS = tuple(p.label for p in v.PROTOCOLS)  # as the file writes them

# Word positions in a line of /proc/net/ip_vs_conn.
PRO, CADDR, CPORT, VADDR, VPORT, DADDR, DPORT, STATE, EXPIRES = range(9)


class ConnFileError(OSError):
    """The connection file cannot be opened (no IPVS, no such namespace)."""


def open_conn_file(netns: str | None = None):
    """The connection file of the namespace, opened for reading line by line.

    A /proc/net file shows the namespace of whoever opens it, so with
    ``netns`` it is opened from a thread moved into that namespace.
    """
    def opener(path):
        return lambda: open(path, encoding="ascii", errors="replace", buffering=READ_BUFFER)

    if netns is None:
        return opener(IP_VS_CONN_FILE)()
    from ipvsctl.netlink.netns import in_netns

    return in_netns(netns, opener(f"/proc/thread-self/net/{IP_VS_CONN}"))


def entries(lines):
    """The entries' lines of the file (its header line left out)."""
    it = iter(lines)
    for first in it:
        if not first.startswith("Pro "):
            yield first
        break
    yield from it


# --------------------------------------------------------------------------
# Filters: on the file's own words
# --------------------------------------------------------------------------


def kernel_address(text: str) -> str:
    """An address as the connection file spells it.

    '192.0.2.1' -> 'C0000201'; '2001:db8::1' -> '2001:0db8:0000:...:0001'.
    Raises ValueError for anything that is not an IPv4 or IPv6 address.
    """
    import socket

    t = text.strip()
    if t.startswith("[") and t.endswith("]"):
        t = t[1:-1]
    try:
        return "%08X" % int.from_bytes(socket.inet_pton(socket.AF_INET, t), "big")
    except OSError:
        pass
    try:
        raw = socket.inet_pton(socket.AF_INET6, t)
    except OSError:
        raise ValueError(f"not an IPv4 or IPv6 address: {text!r}") from None
    return ":".join("%04x" % int.from_bytes(raw[i:i + 2], "big") for i in range(0, 16, 2))


def split_endpoint(text: str) -> tuple[str, int | None]:
    """'ADDR', 'ADDR:PORT', '[V6]', '[V6]:PORT' or a bare IPv6 address ->
    (address text, port or None).  ValueError when the port is not 0..65535."""
    t = text.strip()
    if t.startswith("["):
        addr, sep, rest = t[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad address {text!r}: expected [IPV6] or [IPV6]:PORT")
        port_text = rest[1:] if rest else None
    elif t.count(":") == 1:
        addr, port_text = t.split(":")
    else:
        addr, port_text = t, None
    if port_text is None:
        return addr, None
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"bad port in {text!r}: expected 0..65535")
    return addr, int(port_text)


class Network:
    """An IPv4 or IPv6 network (CIDR, or one address) matched against the
    file's address words."""

    def __init__(self, text: str):
        import ipaddress

        try:
            net = ipaddress.ip_network(text.strip().strip("[]"), strict=False)
        except ValueError:
            raise ValueError(f"not an address or network: {text!r} "
                             "(e.g. 198.51.100.7, 198.51.100.0/24, 2001:db8::/32)") from None
        self.text = str(net)
        self.v6 = net.version == 6
        self.mask = int(net.netmask)
        self.value = int(net.network_address)

    def matches(self, word: str) -> bool:
        if (len(word) > 8) != self.v6:
            return False
        try:
            value = int(word.replace(":", ""), 16)
        except ValueError:
            return False
        return value & self.mask == self.value


class Filter:
    """Which entries to keep.  Every criterion given must hold.

    ``protocol``: 'tcp', 'udp' or 'sctp'.  ``service``/``real_server``:
    'ADDR', 'ADDR:PORT' or '[IPV6]:PORT' (the virtual address a client
    reached, the real server it went to); ``service_protocol`` narrows the
    service to one protocol (-t, -u, --sctp-service).  ``client``: an
    address or a CIDR network.  ``states``: state names, any case.
    Raises ValueError naming the bad value.
    """

    def __init__(self, protocol: str | None = None, service: str | None = None,
                 service_protocol: str | None = None, real_server: str | None = None,
                 client: str | None = None, states=()):
        self.checks = []
        protocols = {p for p in (protocol, service_protocol) if p}
        if len(protocols) > 1:
            raise ValueError(f"the protocol filters disagree: {' and '.join(sorted(protocols))}")
        if protocols:
            word = protocols.pop().upper()
            if word not in PROTOCOLS:
                raise ValueError(f"unknown protocol {word.lower()!r}: tcp, udp or sctp")
            self.checks.append((PRO, word))
        for text, apos, ppos in ((service, VADDR, VPORT), (real_server, DADDR, DPORT)):
            if text is None:
                continue
            addr, port = split_endpoint(text)
            self.checks.append((apos, kernel_address(addr)))
            if port is not None:
                self.checks.append((ppos, "%04X" % port))
        self.client = Network(client) if client else None
        self.states = frozenset(s.upper() for s in states) or None

    def __call__(self, f: list[str]) -> bool:
        if len(f) <= EXPIRES:
            return False
        for pos, word in self.checks:
            if f[pos] != word:
                return False
        if self.states is not None and f[STATE] not in self.states:
            return False
        if self.client is not None and not self.client.matches(f[CADDR]):
            return False
        return True


def kept(lines, keep: Filter):
    """(fields, line) of every entry the filter keeps."""
    for line in entries(lines):
        f = line.split()
        if keep(f):
            yield f, line


# --------------------------------------------------------------------------
# Aggregates: bounded by the table, not by the connections
# --------------------------------------------------------------------------


def count(lines, keep: Filter) -> dict[tuple[str, ...], int]:
    """{(protocol, vaddr, vport, daddr, dport, state) as the file spells
    them: number of entries}."""
    counts: dict[tuple[str, ...], int] = {}
    get = counts.get
    for f, _ in kept(lines, keep):
        key = (f[PRO], f[VADDR], f[VPORT], f[DADDR], f[DPORT], f[STATE])
        counts[key] = get(key, 0) + 1
    return counts


class Endpoint:
    """An address and port in text, from the file's words (made once per key)."""

    __slots__ = ("af", "address", "port")

    def __init__(self, addr_word: str, port_word: str):
        self.af, self.address = _addr(addr_word)
        self.port = _hex(port_word)

    @property
    def text(self) -> str:
        return f"[{self.address}]:{self.port}" if self.af == m.AF_INET6 else f"{self.address}:{self.port}"

    def sort_key(self):
        return (self.af, _address_key(self.af, self.address), self.port)


def _address_key(af: int, text: str) -> bytes:
    import socket

    return socket.inet_pton(af, text)


class Group:
    """Entries counted by state, for one service or real server."""

    __slots__ = ("states", "total")

    def __init__(self):
        self.states: dict[str, int] = {}
        self.total = 0

    def add(self, state: str, n: int) -> None:
        self.states[state] = self.states.get(state, 0) + n
        self.total += n


class Summary:
    """Entries by service (protocol, virtual address and port), real server and state."""

    def __init__(self, counts: dict[tuple[str, ...], int]):
        self.services: dict[tuple, tuple[str, Endpoint, Group, dict]] = {}
        self.total = Group()
        endpoints: dict[tuple[str, str], Endpoint] = {}

        def endpoint(a: str, p: str) -> Endpoint:
            e = endpoints.get((a, p))
            if e is None:
                e = endpoints[(a, p)] = Endpoint(a, p)
            return e

        for (proto, va, vp, da, dp, state), n in counts.items():
            entry = self.services.get((proto, va, vp))
            if entry is None:
                entry = self.services[(proto, va, vp)] = (proto, endpoint(va, vp), Group(), {})
            _, _, group, reals = entry
            group.add(state, n)
            real = reals.get((da, dp))
            if real is None:
                real = reals[(da, dp)] = (endpoint(da, dp), Group())
            real[1].add(state, n)
            self.total.add(state, n)

    def states(self) -> list[str]:
        """Every state seen, in a stable order (TCP's life cycle first)."""
        return sorted(self.total.states, key=_state_order)

    def rows(self):
        """[(protocol, virtual Endpoint, Group, [(real Endpoint, Group), ...])],
        services and real servers in address order."""
        out = []
        for proto, virt, group, reals in sorted(self.services.values(),
                                                key=lambda e: (e[1].sort_key(), e[0])):
            out.append((proto, virt, group, sorted(reals.values(), key=lambda r: r[0].sort_key())))
        return out

    def top(self, n: int):
        """The ``n`` real servers with the most entries (over all services):
        [(Endpoint, Group)], busiest first."""
        by_real: dict[tuple, tuple[Endpoint, Group]] = {}
        for _, _, _, reals in self.services.values():
            for real, group in reals.values():
                key = (real.af, real.address, real.port)
                mine = by_real.get(key)
                if mine is None:
                    mine = by_real[key] = (real, Group())
                for state, k in group.states.items():
                    mine[1].add(state, k)
        ranked = sorted(by_real.values(), key=lambda r: (-r[1].total, r[0].sort_key()))
        return ranked[:n]


# The kernel's state names (TCP, SCTP, UDP/other), TCP's in the order a
# connection goes through them; unknown names sort after, by name.
_STATE_ORDER = {name: i for i, name in enumerate((
    "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT",
    "CLOSE", "LISTEN", "SYNACK", "INIT", "COOKIE_WAIT", "COOKIE_ECHOED", "COOKIE_SENT",
    "COOKIE_REPLIED", "SHUTDOWN_SENT", "SHUTDOWN_RECEIVED", "SHUTDOWN_ACK_SENT", "REJECTED",
    "UDP", "ICMP", "NONE", "ERR"))}


def _state_order(state: str):
    return (_STATE_ORDER.get(state, len(_STATE_ORDER)), state)


# --------------------------------------------------------------------------
# Documents (docs/json.md: "ipvsctl conns")
# --------------------------------------------------------------------------


def _endpoint_dict(e: Endpoint) -> dict:
    from ipvsctl.render.json import family_name

    return {"family": family_name(e.af), "address": e.address, "port": e.port}


def summary_doc(summary: Summary) -> dict:
    services = []
    for proto, virt, group, reals in summary.rows():
        services.append({
            "protocol": proto.lower(), **_endpoint_dict(virt),
            "connections": group.total, "states": group.states,
            "real_servers": [{**_endpoint_dict(real), "connections": g.total, "states": g.states}
                             for real, g in reals],
        })
    return {"connections": summary.total.total, "states": summary.total.states, "services": services}


def top_doc(summary: Summary, n: int) -> dict:
    return {"real_servers": [{**_endpoint_dict(real), "connections": g.total, "states": g.states}
                             for real, g in summary.top(n)]}


def json_lines(lines, keep: Filter):
    """``{"connections": [...]}`` written one connection at a time."""
    import json

    from ipvsctl.render.json import connection_dict

    dumps = json.JSONEncoder(separators=(",", ":")).encode
    yield '{"connections":['
    sep = ""
    for _, line in kept(lines, keep):
        c = parse_line(line)
        if c is not None:
            yield sep + dumps(connection_dict(c))
            sep = ","
    yield "]}\n"


def rows(lines, keep: Filter):
    """(protocol, client, virtual, real server, state, expires) text of each
    kept entry, as the table view shows it."""
    for _, line in kept(lines, keep):
        c = parse_line(line)
        if c is None:
            continue
        yield (c["protocol"],
               _join(c["client_af"], c["client"], c["client_port"]),
               _join(c["client_af"], c["virtual"], c["virtual_port"]),
               _join(c["dest_af"], c["dest"], c["dest_port"]),
               c["state"], "%d:%02d" % divmod(c["expires"], 60))


def _join(af: int, addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if af == m.AF_INET6 else f"{addr}:{port}"
