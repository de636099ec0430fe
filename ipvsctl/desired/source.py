"""The desired table, read from a rule file or a JSON document.

Strategy: no parser of our own.  A rule file is what ``-S`` writes, so each
line goes through the parser ``-R`` uses (``fastline`` for the common
shapes, ``grammar.parse`` for everything else); a JSON document goes through
``restore --json``'s reader (``jsonrestore.parse_document``).  Both give
model values with ipvsadm's defaults filled in (wlc, ``-p`` = 360 s, the full
netmask, the service's port for direct-routing servers), which is what makes
a file and the kernel's table comparable.

A desired table is a description, not a script: only ``-A`` and ``-a`` lines
may appear (anything else is refused with its line number), each service
once, each real server once per service, and every ``-a`` must name a
service that an ``-A`` line of the same file defines (anywhere in it).  The
whole input is checked before anything else happens; the first problem
raises ``InputError`` naming the line or the JSON field.
"""

from __future__ import annotations

from ipvsctl import backend as b
from ipvsctl import model as m
from ipvsctl.vocab import EXIT_INVALID



class InputError(ValueError):
    """A desired-state input that cannot be used; ``exit_code`` as ipvsadm's
    parser would give (2, or 255 for a line that is not a command line)."""

    def __init__(self, message: str, exit_code: int = EXIT_INVALID):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class DesiredTable:
    """Services with their real servers, in the order of the input, and
    where each service came from (``line 3`` or ``services[2]``)."""

    def __init__(self, entries: list[tuple[m.Service, list[m.Destination]]], origins: dict):
        self.entries = entries
        self.origins = origins

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    @property
    def destination_count(self) -> int:
        return sum(len(d) for _, d in self.entries)


def is_json(text: str) -> bool:
    """A document whose first non-blank character is ``{`` is JSON."""
    return text.lstrip()[:1] == "{"


def load(text: str) -> DesiredTable:
    """The desired table in ``text`` (rule lines or JSON, detected)."""
    # A byte order mark (some editors write one) would hide the "{" that
    # marks JSON and make line 1 no command line; it is no content.
    if text.startswith("\ufeff"):
        text = text[1:]
    return load_json(text) if is_json(text) else load_rules(text)


def load_json(text: str) -> DesiredTable:
    from ipvsctl import jsonrestore

    try:
        entries = jsonrestore.loads(text)
    except jsonrestore.DocumentError as e:
        raise InputError(str(e)) from None
    origins = {svc.key: f"services[{i}]" for i, (svc, _) in enumerate(entries)}
    return DesiredTable(entries, origins)


# What a refused command is called in the message.
_REFUSED = {
    "edit-service": "-E (edit a service)", "delete-service": "-D (delete a service)",
    "flush": "-C (clear the table)", "edit-server": "-e (edit a real server)",
    "delete-server": "-d (delete a real server)", "set": "--set (timeouts)",
    "zero": "-Z (zero counters)", "start-daemon": "--start-daemon", "stop-daemon": "--stop-daemon",
    "list": "-L (list)", "save": "-S (save)", "restore": "-R (restore)",
    "help": "-h (help)", "version": "-v (version)",
}
_FAST_REFUSED = {b.OP_EDIT_SERVICE: "edit-service", b.OP_EDIT_DEST: "edit-server"}


def _line_request(words: list[str], line_no: int) -> b.Request:
    """The add request of one rule line; InputError for anything else."""
    from ipvsctl.grammar import ParseError, parse
    from ipvsctl.ops import to_request

    try:
        cmd = parse(words)
    except ParseError as e:
        if e.try_help:
            raise InputError(f"line {line_no}: not an ipvsadm command line", e.exit_code) from None
        raise InputError(f"line {line_no}: {e.message.strip()}", e.exit_code) from None
    if cmd.name not in ("add-service", "add-server"):
        raise _refused(cmd.name, line_no)
    return to_request(cmd)


def _refused(name: str, line_no: int) -> InputError:
    what = _REFUSED.get(name, name)
    return InputError(f"line {line_no}: {what} has no place in a desired table: "
                      "only -A and -a lines (what -S writes) describe one")


def load_rules(text: str) -> DesiredTable:
    from ipvsctl.labels import host_port, service_label
    from ipvsctl.fastline import request as fast_request
    from ipvsctl.grammar import split_restore_line

    services: dict[m.ServiceKey, tuple[int, m.Service]] = {}
    dests: dict[m.ServiceKey, dict[tuple, tuple[int, m.Destination]]] = {}
    for line_no, line in enumerate(text.split("\n"), 1):
        words = split_restore_line(line)
        if not words or words[0].startswith("#"):
            continue
        # The shapes -S writes take fastline's shortcut, the rest the grammar.
        req = fast_request(words)
        if req is None:
            req = _line_request(words, line_no)
        elif req.op in _FAST_REFUSED:
            raise _refused(_FAST_REFUSED[req.op], line_no)
        if req.op == b.OP_ADD_SERVICE:
            svc = req.service
            seen = services.get(svc.key)
            if seen is not None:
                raise InputError(f"line {line_no}: {service_label(svc.key)} is already defined "
                                 f"on line {seen[0]}")
            services[svc.key] = (line_no, svc)
            dests.setdefault(svc.key, {})
        else:
            key, d = req.service, req.dest
            ident = (d.af, d.addr, d.port)
            per = dests.setdefault(key, {})
            seen = per.get(ident)
            if seen is not None:
                raise InputError(f"line {line_no}: real server {host_port(d.af, d.addr, d.port)} of "
                                 f"{service_label(key)} is already listed on line {seen[0]}")
            per[ident] = (line_no, d)
    for key, per in dests.items():
        if key not in services:
            line_no = min(n for n, _ in per.values())
            raise InputError(f"line {line_no}: real server of {service_label(key)}, which no -A "
                             "line of the file defines")
    # dicts keep insertion order, which is line order
    entries = [(svc, [d for _, d in dests[key].values()]) for key, (_, svc) in services.items()]
    origins = {key: f"line {line_no}" for key, (line_no, _) in services.items()}
    return DesiredTable(entries, origins)
