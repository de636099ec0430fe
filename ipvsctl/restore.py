"""`-R`: apply a stream of ipvsadm command lines, checked first, then batched.

Strategy, and where it parts from ipvsadm on purpose (docs/compat.md):
1. Every line is parsed and validated before anything is sent.  A line
   ipvsadm would refuse stops the restore with that line's number and
   message and the kernel table untouched (ipvsadm applies the lines before
   it and leaves the table half-restored).  '#' comment lines are skipped.
2. What a checked line asks is held compactly until everything is checked
   (``Plan``): its request goes into the backend's ``Batch`` at once
   (NetlinkBackend encodes it there, back to back with the others), and its
   line number and operation into two arrays.  The input is read a MiB at
   a time and never held whole, so a million-line stream costs ~175 bytes
   a line, not a list of objects per line (docs/performance.md).  Into a
   backend's EncodedBatch (``plan_chunks``), the lines ipvsadm -S writes
   are read a block at a time by one pattern and packed from templates
   (restore_stream); every other line goes the per-line way (``plan``).
3. Consecutive change commands are sent as one pipelined batch
   (``sending.send_held``, as ``restore --json`` and the put-back send),
   which keeps going past kernel errors exactly as ipvsadm does line by
   line.  List and save lines run in their place, after the changes before
   them.
4. Every line the kernel refused is reported with its number and ipvsadm's
   message, and the exit status is non-zero if any line failed (ipvsadm
   returns only the status of its last line).
5. A signal (``interrupt.Guard``, installed by the caller) noted while
   sending stops the restore at the next window: the window already sent is
   read to its end first, so the report says exactly up to which line
   everything was sent and from which line nothing was.  A conversation
   that breaks off (no answer in time) is reported the same way, with the
   window it hit as of unknown outcome (``sending.account``).
"""

from __future__ import annotations

from array import array

# Everything planning uses is imported here, before the caller's
# interrupt.Guard can raise: a signal raised inside an import (importlib's
# lock callbacks) is printed as "Exception ignored" and swallowed.
from ipvsctl import backend as b
from ipvsctl import sending
from ipvsctl.fastline import request as fast_request
from ipvsctl.grammar import ParseError, parse, split_restore_line
from ipvsctl.ops import execute, is_change, to_request
from ipvsctl.restore_stream import blocks_of, plan_block
from ipvsctl.vocab import EXIT_KERNEL, EXIT_OK, EXIT_SIGNALLED, EXIT_USAGE

#: Every change operation, by the code Plan.ops holds for it.
OPS = (b.OP_ADD_SERVICE, b.OP_EDIT_SERVICE, b.OP_DEL_SERVICE, b.OP_ZERO, b.OP_FLUSH, b.OP_ADD_DEST,
       b.OP_EDIT_DEST, b.OP_DEL_DEST, b.OP_SET_TIMEOUTS, b.OP_START_DAEMON, b.OP_STOP_DAEMON)
OP_CODES = {op: code for code, op in enumerate(OPS)}
#: Services kept per scheduler and engine name (for `restore`'s name check,
#: which names the first 10 places a missing name is asked for, then "...").
NAMES_KEPT = 11
READ_SIZE = 1 << 20


def lines_of(chunks):
    """The lines of text arriving in ``chunks``, as ``text.split("\\n")``
    gives them for the whole text, with no more than a chunk held at once."""
    rest = ""
    for chunk in chunks:
        parts = (rest + chunk).split("\n")
        rest = parts.pop()
        yield from parts
    yield rest


def stream_chunks(stream, size: int = READ_SIZE):
    """A text stream read ``size`` characters at a time."""
    return iter(lambda: stream.read(size), "")


def stream_lines(stream, size: int = READ_SIZE):
    """The lines of a text stream (see ``lines_of``), read ``size`` characters at a time."""
    return lines_of(stream_chunks(stream, size))


class Plan:
    """A checked stream: requests in ``batch`` (index i), with the line
    number (0: the --flush, no line of the input) and operation code of each
    in ``lines`` and ``ops``; list lines in ``listings`` as (requests before
    it, line number, Command); ``commands`` counts the lines that are
    commands; ``names`` keeps a few services per (scheduler, engine)."""

    def __init__(self, batch):
        self.batch = batch
        self.lines = array("L")
        self.ops = bytearray()
        self.listings: list = []
        self.commands = 0
        self.names: dict = {}

    def has(self, op: str, start: int = 0) -> bool:
        """Whether a request from ``start`` on is ``op``."""
        return self.ops.find(OP_CODES[op], start) >= 0

    def located(self) -> list:
        """(line number, Service) of the services kept in ``names``, in line order."""
        return sorted((place for kept in self.names.values() for place in kept), key=lambda p: p[0])


class RestoreLineError(Exception):
    """Line ``line_no`` (its text: ``line``) does not parse; ``first``: no
    command line came before it."""

    def __init__(self, line_no: int, error: ParseError, first: bool = False, line: str = ""):
        super().__init__(line_no, error)
        self.line_no = line_no
        self.error = error
        self.first = first
        self.line = line


def plan(lines, batch=None, flush: bool = False) -> Plan:
    """Parse and check every line, holding each request in ``batch`` (a
    backend's ``Batch``; default: a list); with ``flush``, a flush goes first.

    Raises RestoreLineError for the first line that does not parse.
    """
    planner = _Planner(batch, flush)
    line = planner.line
    with _collector_paused():
        for line_no, text in enumerate(lines, 1):
            line(line_no, text)
    return planner.done()


def plan_chunks(chunks, batch=None, flush: bool = False) -> Plan:
    """``plan`` of the text arriving in ``chunks``, read whole blocks at a
    time into a backend's EncodedBatch: the lines ipvsadm -S writes by one
    pattern (restore_stream), every other line as ``plan`` reads it.  The
    same Plan, the same errors."""
    planner = _Planner(batch, flush)
    v4_dests = getattr(planner.p.batch, "v4_dests", None)
    with _collector_paused():
        if v4_dests is None:  # a batch of Requests (tests): line by line
            for line_no, text in enumerate(lines_of(chunks), 1):
                planner.line(line_no, text)
        else:
            dests = v4_dests()
            dest_code = OP_CODES[b.OP_ADD_DEST]
            services: dict = {}
            line_no = 1
            for block in blocks_of(chunks):
                line_no = plan_block(block, line_no, planner, dests, dest_code, services)
    return planner.done()


class _collector_paused:
    """The cyclic garbage collector paused: planning makes a few objects a
    line and no cycles, and a collection every 700 allocations (each walking
    everything planned so far) cost ~40% of the time (docs/performance.md).
    Reference counting still frees everything at once, so memory stays as
    bounded as with it on; it runs again as it was afterwards."""

    def __enter__(self):
        import gc

        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was:
            import gc

            gc.enable()


class _Planner:
    """A Plan filled a line at a time (see ``plan``)."""

    def __init__(self, batch, flush: bool):
        self.fast_request, self.is_change, self.to_request = fast_request, is_change, to_request
        self.p = p = Plan(batch if batch is not None else b.Batch())
        self.flush = flush
        if flush:
            p.batch.add(b.Request(b.OP_FLUSH))
            p.lines.append(0)
            p.ops.append(OP_CODES[b.OP_FLUSH])

    def line(self, line_no: int, line: str) -> None:
        """Plan one line of any shape (blank, comment, command)."""
        words = split_restore_line(line)
        if not words or words[0].startswith("#"):
            return
        # popt's "!#:+" takes a later word as an option's value: only the
        # grammar knows that.
        req = self.fast_request(words) if "!#:+" not in line else None
        if req is None:
            p = self.p
            try:
                cmd = parse(words)
                if cmd.name in ("restore", "help", "version"):
                    # ipvsadm refuses a nested restore; help and version would end
                    # the stream half-way, so they are refused here too.
                    raise ParseError("", EXIT_USAGE, try_help=True)
            except ParseError as e:
                first = len(p.lines) == int(self.flush) and not p.listings
                raise RestoreLineError(line_no, e, first, line) from None
            if not self.is_change(cmd):
                p.listings.append((len(p.lines), line_no, cmd))
                return
            req = self.to_request(cmd)
        self.request(line_no, req)

    def request(self, line_no: int, req: b.Request) -> None:
        """Hold line ``line_no``'s checked request."""
        p = self.p
        p.batch.add(req)
        p.lines.append(line_no)
        op = req.op
        p.ops.append(OP_CODES[op])
        if op in _SERVICE_OPS:
            svc = req.service
            kept = p.names.setdefault((svc.scheduler, svc.pe_name), [])
            if len(kept) < NAMES_KEPT:
                kept.append((line_no, svc))

    def done(self) -> Plan:
        p = self.p
        p.commands = len(p.lines) - int(self.flush) + len(p.listings)
        return p


_SERVICE_OPS = (b.OP_ADD_SERVICE, b.OP_EDIT_SERVICE)


class RestoreResult:
    """What a restore did: exit status, output lines, the count applied and
    the line numbers failed; and where it stopped, when it stopped early
    (``signum``, or ``broken``: a fault of the conversation)."""

    def __init__(self, status: int = EXIT_OK):
        self.status = status
        self.out: list[str] = []
        self.err: list[str] = []
        self.applied = 0
        self.commands = 0  # lines that are commands (not blank, not comments)
        self.failed: list[int] = []  # line numbers
        self.flush_failed = False
        self.signum: int | None = None  # a signal came while sending
        self.stopped = False  # ... and lines were left unsent
        self.broken: b.BatchBroken | None = None
        self.last_line = 0  # the last line whose outcome is known (0: none)
        self.next_line = 0  # the first line not sent (0: none left)
        self.unknown = (0, 0)  # lines of unknown outcome (first, last), after a fault

    def failures(self) -> str:
        """'K of M commands failed (lines ...)'."""
        shown = ", ".join(str(n) for n in self.failed[:20])
        more = ", ..." if len(self.failed) > 20 else ""
        return f"{len(self.failed)} of {self.commands} commands failed (lines {shown}{more})"

    def summary(self) -> str:
        """The closing line of a restore in which something failed."""
        return f"restore: {self.failures()}, {self.commands - len(self.failed)} applied\n"

    def counts(self) -> str:
        """'A applied, F failed (lines ...)', for the account."""
        if not self.failed:
            return f"{self.applied} applied, 0 failed"
        shown = ", ".join(str(n) for n in self.failed[:20])
        more = ", ..." if len(self.failed) > 20 else ""
        return f"{self.applied} applied, {len(self.failed)} failed (lines {shown}{more})"

    def account(self) -> str:
        """The closing line of a restore that stopped early, or ''."""
        first, last = self.unknown
        if not last:  # the window held the --flush alone
            unknown_at = unknown = "the --flush"
        else:
            unknown_at = f"line {first}"
            unknown = unknown_at if first == last else f"lines {first} to {last}"
        line = sending.account(
            "line", self.counts(), self.signum, self.broken, self.stopped,
            last=f"line {self.last_line}" if self.last_line else "",
            following=f"line {self.next_line}" if self.next_line else "",
            unknown_at=unknown_at, unknown=unknown)
        return line + "\n" if line else ""


def apply(p: Plan, backend: b.Backend, guard=None) -> RestoreResult:
    """Send the plan's requests, running its list lines in their place.
    ``guard`` (interrupt.Guard, noting): once it has noted a signal, nothing
    more is sent after the window in flight (see the module's strategy)."""
    if isinstance(p.batch, b.Batch) and p.batch.backend is None:
        p.batch.backend = backend  # planned without one (tests, benchmarks): send it here
    result = RestoreResult()
    result.commands = p.commands
    lines, ops = p.lines, p.ops
    should_stop = guard.interrupted if guard is not None else None
    sent = 0  # requests before this one have their outcome
    flushes = int(bool(lines) and lines[0] == 0)  # the --flush: no line of the input

    def take(done: sending.Sent, start: int) -> None:
        result.applied += done.applied
        for r in done.refusals:
            if r.where is None:
                result.flush_failed = True
                result.err.append(f"clearing the table (--flush): {r.message}\n")
                continue
            result.failed.append(r.where)
            result.err.append(f"line {r.where}: {r.message}\n")
            if r.hint:
                result.err.append(f"line {r.where}: {r.hint}\n")
        if done.reached > start and lines[done.reached - 1]:
            result.last_line = lines[done.reached - 1]

    for before, line_no, cmd in [*p.listings, (len(lines), 0, None)]:
        if sent < before:
            done = sending.send_held(backend, p.batch, lines.__getitem__, lambda i: OPS[ops[i]],
                                     sent, before, should_stop, counted_from=flushes)
            take(done, sent)
            e = done.broken
            if e is not None:
                result.broken = e
                result.unknown = (lines[e.done] or lines[min(e.done + 1, e.unknown - 1)],
                                  lines[e.unknown - 1])
                result.next_line = lines[e.unknown] if e.unknown < len(lines) else line_no
                break
            sent = done.reached
            if sent < before:
                result.stopped = True
                result.next_line = lines[sent] or (lines[1] if len(lines) > 1 else line_no)
                break
        if cmd is None:
            break
        if should_stop is not None and should_stop():
            result.stopped = True
            result.next_line = line_no
            break
        outcome = execute(cmd, backend)
        result.out.append(outcome.text)
        if outcome.err:
            result.err.append(f"line {line_no}: {outcome.err}")
        if outcome.status:
            result.failed.append(line_no)
        else:
            result.applied += 1
        result.last_line = line_no
    if guard is not None:
        result.signum = guard.signum
    if result.signum is not None:
        result.status = EXIT_SIGNALLED + result.signum
    elif result.failed or result.flush_failed or result.broken is not None:
        result.status = EXIT_KERNEL
    return result
