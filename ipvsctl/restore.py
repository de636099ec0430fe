"""`-R`: apply a stream of ipvsadm command lines, checked first, then batched.

Strategy, and where it parts from ipvsadm on purpose (docs/compat.md):
1. Every line is parsed and validated before anything is sent.  A line
   ipvsadm would refuse stops the restore with that line's number and
   message and the kernel table untouched (ipvsadm applies the lines before
   it and leaves the table half-restored).  '#' comment lines are skipped.
2. Consecutive change commands are sent as one pipelined batch
   (``Backend.apply_many``), which keeps going past kernel errors exactly as
   ipvsadm does line by line.  List and save lines run in their place.
3. Every line the kernel refused is reported with its number and ipvsadm's
   message, and the exit status is non-zero if any line failed (ipvsadm
   returns only the status of its last line).
"""

from __future__ import annotations


from ipvsctl import backend as b
from ipvsctl import sending
from ipvsctl.grammar import ParseError, parse, split_restore_line
from ipvsctl.vocab import EXIT_KERNEL, EXIT_OK, EXIT_USAGE


class RestoreResult:
    """What a restore did: exit status, output lines, and the count applied
    and line numbers failed."""

    def __init__(self, status: int = EXIT_OK):
        self.status = status
        self.out: list[str] = []
        self.err: list[str] = []
        self.applied = 0
        self.commands = 0  # lines that are commands (not blank, not comments)
        self.failed: list[int] = []  # line numbers
        self.flush_failed = False

    def failures(self) -> str:
        """'K of M commands failed (lines ...)'."""
        shown = ", ".join(str(n) for n in self.failed[:20])
        more = ", ..." if len(self.failed) > 20 else ""
        return f"{len(self.failed)} of {self.commands} commands failed (lines {shown}{more})"

    def summary(self) -> str:
        """The closing line of a restore in which something failed."""
        return f"restore: {self.failures()}, {self.commands - len(self.failed)} applied\n"


class RestoreLineError(Exception):
    def __init__(self, line_no: int, error: ParseError):
        super().__init__(line_no, error)
        self.line_no = line_no
        self.error = error


def plan(lines):
    """Parse every line; return [(line_no, Request | Command)].

    Raises RestoreLineError for the first line that does not parse.
    """
    from ipvsctl.fastline import request as fast_request
    from ipvsctl.ops import is_change, to_request

    steps = []
    for line_no, line in enumerate(lines, 1):
        words = split_restore_line(line)
        if not words or words[0].startswith("#"):
            continue
        # popt's "!#:+" takes a later word as an option's value: only the
        # grammar knows that.
        req = fast_request(words) if "!#:+" not in line else None
        if req is not None:
            steps.append((line_no, req))
            continue
        try:
            cmd = parse(words)
            if cmd.name in ("restore", "help", "version"):
                # ipvsadm refuses a nested restore; help and version would end
                # the stream half-way, so they are refused here too.
                raise ParseError("", EXIT_USAGE, try_help=True)
        except ParseError as e:
            raise RestoreLineError(line_no, e) from None
        steps.append((line_no, to_request(cmd) if is_change(cmd) else cmd))
    return steps


def apply(steps, backend: b.Backend, flush: bool = False) -> RestoreResult:
    """Run the planned steps; with ``flush`` the table is cleared first, in
    the same batch as the first changes (it is no line of the input, so it
    shifts no line number)."""
    from ipvsctl.ops import execute

    result = RestoreResult()
    result.commands = len(steps)
    batch: list = [(None, b.Request(b.OP_FLUSH))] if flush else []

    def send():
        if not batch:
            return
        sent = sending.send(backend, batch)
        result.applied += sent.applied
        for r in sent.refusals:
            if r.where is None:
                result.flush_failed = True
                result.err.append(f"clearing the table (--flush): {r.message}\n")
                continue
            result.failed.append(r.where)
            result.err.append(f"line {r.where}: {r.message}\n")
            if r.hint:
                result.err.append(f"line {r.where}: {r.hint}\n")
        batch.clear()

    for line_no, step in steps:
        if isinstance(step, b.Request):
            batch.append((line_no, step))
            continue
        send()
        outcome = execute(step, backend)
        result.out.append(outcome.text)
        if outcome.err:
            result.err.append(f"line {line_no}: {outcome.err}")
        if outcome.status:
            result.failed.append(line_no)
    send()
    if result.failed or result.flush_failed:
        result.status = EXIT_KERNEL
    return result

