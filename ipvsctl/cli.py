"""The command line: ipvsadm's syntax, and the way to ipvsctl's own subcommands.

Strategy: one error boundary (``main``) and two surfaces.  A first word that
names an ipvsctl subcommand (``list``, ``watch``, ...: ipvsctl.commands)
goes there; anything else is an ipvsadm command line (``run_compat``) and
goes through ``ipvsctl.grammar`` and ``ipvsctl.ops`` straight to the kernel.
The ipvsadm path imports neither click nor json, so a plain ``ipvsctl -Ln``
starts as fast as Python allows; it knows the subcommands by name only
(ipvsctl.commands imports nothing), and they never import this module.
``--netns NAME`` may appear anywhere on an ipvsadm-style line.
"""

from __future__ import annotations

import os
import sys

from ipvsctl import session
from ipvsctl.commands import SUBCOMMANDS
from ipvsctl.vocab import EXIT_FAILED, EXIT_INVALID, EXIT_OK, EXIT_SIGNALLED, EXIT_USAGE, EXIT_WRITE_FAILED


def program_name() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "ipvsctl"
    return "ipvsctl" if name in ("", "__main__.py", "-c") else name


def try_help(prog: str) -> str:
    return f"Try `{prog} -h' or '{prog} --help' for more information.\n"


def extract_netns(args: list[str]) -> tuple[list[str], str | None]:
    """Remove ``--netns NAME`` / ``--netns=NAME`` from an ipvsadm-style line."""
    rest, netns, i = [], None, 0
    while i < len(args):
        a = args[i]
        if a == "--":
            rest.extend(args[i:])
            break
        if a == "--netns":
            if i + 1 >= len(args):
                raise ValueError("--netns: missing argument")
            netns = args[i + 1]
            i += 2
            continue
        if a.startswith("--netns="):
            netns = a[len("--netns="):]
            i += 1
            continue
        rest.append(a)
        i += 1
    return rest, netns


def extract_json(args: list[str]) -> tuple[list[str], bool]:
    """Remove the word ``--json`` (before any ``--``) from an ipvsadm-style line."""
    if "--json" not in args:
        return args, False
    end = args.index("--") if "--" in args else len(args)
    rest = [a for a in args[:end] if a != "--json"] + args[end:]
    return rest, len(rest) != len(args)


def run_compat(args: list[str], stdin, stdout, stderr, prog: str = "ipvsctl") -> int:
    """Run one ipvsadm-style command line; return its exit status."""
    from ipvsctl.backend import KernelError
    from ipvsctl.command import Command
    from ipvsctl.grammar import ParseError, parse

    try:
        args, netns = extract_netns(args)
    except ValueError as e:
        stderr.write(f"{e}\n")
        return EXIT_USAGE
    args, as_json = extract_json(args)
    if not args:
        cmd = Command(name="list")
    else:
        try:
            cmd = parse(args)
        except ParseError as e:
            stderr.write(try_help(prog) if e.try_help else e.message + "\n")
            if e.try_help:
                stderr.write(_subcommand_hint(args[0], prog))
            return e.exit_code
    if cmd.name in ("help", "version"):
        from ipvsctl.help import usage_text, version_text

        stdout.write(usage_text(prog) if cmd.name == "help" else version_text())
        return EXIT_OK
    if as_json and cmd.name != "list":
        stderr.write("--json: only with a list command (-L, -l)\n")
        return EXIT_INVALID

    try:
        backend = session.open_backend(netns)
    except (KernelError, OSError) as e:
        failure = session.open_failure(netns, e)
        # ipvsadm's own two lines when IPVS cannot be reached; ours, named, else.
        stderr.write((failure.message if isinstance(e, KernelError) else f"{prog}: {failure.message}") + "\n")
        return failure.exit_code
    try:
        if cmd.name == "restore":
            from ipvsctl import stdio

            with stdio.held():  # failing output does not stop a restore half-way
                return _restore(stdin, stdout, stderr, backend, prog)
        from ipvsctl.ops import execute

        outcome = execute(cmd, backend, as_json, pretty=as_json and getattr(stdout, "isatty", bool)())
        if isinstance(outcome.out, str):
            stdout.write(outcome.out)
        else:
            for part in outcome.out:
                stdout.write(part)
        stderr.write(outcome.err)
        return outcome.status
    except KernelError as e:  # a fault of the conversation itself, e.g. no answer in time
        return session.report(e, prog, stderr)
    finally:
        backend.close()


def _starts_json(line: str) -> bool:
    """Whether a -R stream's first line opens a JSON document ("{", "[{",
    "[" alone), not an ipvsadm word in brackets such as "[2001:db8::1]:80"."""
    text = line.strip()
    return text[:1] == "{" or (text[:1] == "[" and text[1:].lstrip()[:1] in ("", "{", "[", "]"))


def _restore(stdin, stdout, stderr, backend, prog: str) -> int:
    """-R: the stream read and checked whole, then sent (ipvsctl.restore).
    SIGINT and SIGTERM stop it at once while nothing is sent; then at the
    next window, with an account of what was sent (exit 128 + signal)."""
    from ipvsctl.backend import batch_for
    from ipvsctl.interrupt import Guard, Interrupted, signal_name
    from ipvsctl.restore import RestoreLineError, apply, plan_chunks, stream_chunks

    unchanged = "restore: nothing was applied (the kernel table is unchanged)\n"
    with Guard(ends_quietly=True) as guard:
        try:
            steps = plan_chunks(stream_chunks(stdin), batch_for(backend))
            guard.defer()
        except RestoreLineError as e:
            what = try_help(prog).rstrip("\n") if e.error.try_help else e.error.message
            stderr.write(f"line {e.line_no}: {what}\n{unchanged}")
            if e.first and _starts_json(e.line):
                stderr.write(f"restore: the input is a JSON document: `{prog} restore --json` reads it\n")
            return e.error.exit_code
        except OSError as e:  # closed (<&-), a directory, an I/O error: ipvsadm reads nothing, exit 0
            stderr.write(f"{prog}: standard input: {e.strerror}\n{unchanged}")
            return EXIT_INVALID
        except Interrupted as e:
            stderr.write(f"restore: interrupted by {signal_name(e.signum)} while reading and checking "
                         f"the input: nothing was applied (the kernel table is unchanged)\n")
            return EXIT_SIGNALLED + e.signum
        result = apply(steps, backend, guard)
        if result.failed and not result.account():
            result.err.append(result.summary())
        result.err.append(result.account())
        stdout.write("".join(result.out))
        stderr.write("".join(result.err))
    return result.status


def subcommand_line(args: list[str]) -> list[str] | None:
    """The line for ipvsctl's subcommand application, or None for an
    ipvsadm-style line.

    The options every command shares (``--netns NAME``, ``--netns=NAME``,
    ``--json``) may come before the subcommand's word, as they may anywhere
    on an ipvsadm line: ``ipvsctl --netns X list`` is ``ipvsctl list
    --netns X``.
    """
    i, n = 0, len(args)
    while i < n:
        a = args[i]
        if a == "--netns" and i + 1 < n:
            i += 2
        elif a == "--json" or a.startswith("--netns="):
            i += 1
        else:
            break
    if i < n and (args[i] in SUBCOMMANDS or args[i] == "help"):
        return [args[i], *args[:i], *args[i + 1:]]
    return None


def _subcommand_hint(word: str, prog: str) -> str:
    """A line after ipvsadm's "Try ..." when the first word looks like a
    misspelt subcommand (`ipvsctl lsit`), else ''."""
    if word[:1] == "-" or not word:
        return ""
    import difflib

    close = difflib.get_close_matches(word, (*SUBCOMMANDS, "help"), n=1, cutoff=0.6)
    return f"{prog}: `{word}' is no subcommand; did you mean `{prog} {close[0]}'?\n" if close else ""


def _help(args: list[str], prog: str) -> int:
    """``ipvsctl help [SUBCOMMAND]`` (help.answer)."""
    from ipvsctl.help import answer

    words, skip = [], False
    for a in args[1:]:
        if skip:  # the name after --netns is no topic
            skip = False
        elif a == "--netns":
            skip = True
        elif not a.startswith("-"):
            words.append(a)
    return answer(words[0] if words else None, prog)


def _run(args: list[str], prog: str) -> int:
    """Route one command line: the man page, help, a subcommand (a plain
    list or watch line without click), or an ipvsadm line."""
    if args == ["--man"]:  # the man page, where man(1) does not find it
        from ipvsctl.manpage import show

        return show()
    line = subcommand_line(args)
    if line is not None and line[0] == "help":
        return _help(line, prog)
    completing = "_IPVSCTL_COMPLETE" in os.environ
    if line is not None and line[0] in ("list", "ls", "watch") and not completing:
        # The views read a plain line without click (ipvsctl.views: speed).
        from ipvsctl.views import run_fast

        status = run_fast(line, prog)
        if status is not None:
            return status
    if line is not None or completing:
        from ipvsctl.commands.group import run_app

        return run_app(line if line is not None else args, prog)
    # Bytes that are not UTF-8 (in a -R stream) pass through as ipvsadm's do,
    # instead of ending the run with a decoding traceback.
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        if stream is not None and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    return run_compat(args, sys.stdin, sys.stdout, sys.stderr, prog)


def _exit_code(code) -> int:
    """SystemExit's code as a status (click's completion exits by itself)."""
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return EXIT_FAILED


def main(argv: list[str] | None = None) -> None:
    """The one error boundary: whatever a command raises ends here, as its
    line on standard error and its exit status (session.report), never a
    traceback; output errors follow coreutils (ipvsctl.stdio: a reader that
    left ends the run as ipvsadm's ends, a write error is said once)."""
    from ipvsctl import stdio

    stdio.prepare()
    guards = sys.modules.get("ipvsctl.interrupt")
    if guards is not None:
        guards.reset()  # an earlier run in this process (tests) completed a guarded command
    args = sys.argv[1:] if argv is None else list(argv)
    prog = program_name()
    try:
        status = _run(args, prog)
    except stdio.OutputError:
        status = EXIT_WRITE_FAILED  # said by finish()
    except SystemExit as e:
        status = _exit_code(e.code)
    except BaseException as e:
        status = session.report(e, prog, sys.stderr)
        if status is None:
            raise
    sys.exit(stdio.finish(status, prog))
