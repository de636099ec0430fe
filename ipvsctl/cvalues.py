"""ipvsadm's values as the C library reads them.

Strategy: each parser mirrors the C library call ipvsadm makes, because the
accepted spellings are part of the interface: "1.2" is a valid inet_aton
address, " 80" a valid strtol number, "localhost:http" an address and a
port by name.  Host and service names are resolved here, as ipvsadm does
(getaddrinfo's IPv4 view, getservbyname); nothing else does I/O.
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py's enum classes cost ~6 ms of start-up

from ipvsctl import vocab as v

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


def c_prefix(text: str, size: int) -> str:
    """The first ``size`` bytes of a word, as ipvsadm copies a name into a
    fixed buffer: counted in bytes, not characters, and held as text that
    encodes back (surrogateescape) to exactly those bytes."""
    if text.isascii():
        return text[:size]
    return text.encode("utf-8", "surrogateescape")[:size].decode("utf-8", "surrogateescape")


def number_in(text: str, lo: int, hi: int) -> int | None:
    n = c_strtol(text)
    return n if n is not None and lo <= n <= hi else None


# Names Python's gethostbyname answers itself and the C library's refuses:
# "" is INADDR_ANY and "<broadcast>" INADDR_BROADCAST to Python only, so
# ipvsadm calls both no host at all.
_PYTHON_ONLY_HOSTS = ("", "<broadcast>")


def host_v4(name: str) -> bytes | None:
    try:
        return socket.inet_aton(name)
    except (OSError, UnicodeError):  # UnicodeError: bytes of a word that were not UTF-8
        pass
    if name in _PYTHON_ONLY_HOSTS:
        return None
    # The word's own bytes, as ipvsadm passes them: a str would go through
    # the IDNA codec, which takes "１.2.3.4" (fullwidth digits) for 1.2.3.4.
    raw = name.encode("utf-8", "surrogateescape")
    try:
        return socket.inet_aton(socket.gethostbyname(raw))
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
            return v.AF_INET6, socket.inet_pton(v.AF_INET6, buf), _port(port_text, protocol)
        except (OSError, UnicodeError):
            pass
    # Not IPv6: a bracketed IPv4 loses its port (ipvsadm re-scans the part
    # inside the brackets for a colon); otherwise the last colon splits.
    port_text = None
    colon = buf.rfind(":")
    if colon >= 0:
        buf, port_text = buf[:colon], buf[colon + 1:]
    packed = host_v4(buf)
    if packed is None:
        return None
    return v.AF_INET, packed, _port(port_text, protocol)


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


def c_atoi(text: str) -> int:
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
