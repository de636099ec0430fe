"""The ipvsctl(8) man page: made from docs/ipvsctl.8.md and the subcommands.

Strategy: one source for the prose (docs/ipvsctl.8.md, a small Markdown
subset that reads as plain documentation too) and the subcommands
themselves for their section: each command's usage, help text and options
are what its ``--help`` shows, so a subcommand added by anyone appears by
running scripts/gen-man, and a test fails until someone does.  The page is
checked in as ipvsctl/data/ipvsctl.8 (package data, so ``ipvsctl --man``
can show it anywhere, and also installed by pip as
share/man/man8/ipvsctl.8, where man(1) finds it from the venv's or
prefix's bin on PATH).

``render`` (Markdown -> roff) and ``subcommands`` (click -> Markdown) are
pure; ``show`` is the ``--man`` fallback.  The roff uses only the classic
man macros (TH, SH, SS, PP, TP, IP, RS/RE, nf/fi), so any man(1) renders it.
"""

from __future__ import annotations

import os
import re

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "ipvsctl.8")
MARKER = "<!-- subcommands -->"

_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\*([^*]+)\*|\[([^\]]+)\]\([^)]+\)")


def escape(text: str) -> str:
    """Plain text for roff: backslashes, and minus signs (a '-' would print
    as a hyphen, and options must be typed with the ASCII minus)."""
    return text.replace("\\", "\\e").replace("-", "\\-")


def inline(text: str) -> str:
    """`code` and **bold** -> bold, *italic* -> italic, [text](link) -> text."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(escape(text[pos:m.start()]))
        code, bold, italic, link = m.groups()
        if code is not None or bold is not None:
            out.append("\\fB" + escape(code if code is not None else bold) + "\\fR")
        elif italic is not None:
            out.append("\\fI" + escape(italic) + "\\fR")
        else:
            out.append(escape(link))
        pos = m.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def _line(text: str) -> str:
    """A roff text line: one starting with '.' or ' would be a request."""
    return "\\&" + text if text[:1] in (".", "'") else text


def render(markdown: str, title: str = "IPVSCTL", section: str = "8", source: str = "") -> str:
    """The Markdown subset of docs/ipvsctl.8.md as a man page."""
    markdown = re.sub(r"<!--(?!\s*subcommands).*?-->\s*", "", markdown, flags=re.S)
    # No hyphenation and a ragged right: an option split at its hyphen
    # could not be copied from the page.
    out = [f'.TH {title} {section} "" "{escape(source)}" "System Administration"', ".nh", ".ad l"]
    lines = markdown.splitlines()
    i, para = 0, []

    def flush():
        if para:
            out.append(".PP")
            out.append(_line(inline(" ".join(para))))
            para.clear()

    while i < len(lines):
        raw = lines[i]
        s = raw.strip()
        if s.startswith("```"):
            flush()
            out += [".PP", ".RS 4", ".nf"]
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                out.append(_line(escape(lines[i])))
                i += 1
            out += [".fi", ".RE"]
        elif s.startswith("## "):
            flush()
            out.append('.SS "' + escape(s[3:]).replace('"', "'") + '"')
        elif s.startswith("# "):
            flush()
            out.append(".SH " + escape(s[2:].upper()))
        elif s.startswith("- "):
            flush()
            item = [s[2:]]
            while i + 1 < len(lines) and lines[i + 1].startswith("  ") and lines[i + 1].strip():
                i += 1
                item.append(lines[i].strip())
            out += [".IP \\(bu 2", _line(inline(" ".join(item)))]
        elif s and i + 1 < len(lines) and lines[i + 1].startswith(":   "):
            flush()
            out += [".TP", _line(inline(s))]
            body = []
            while i + 1 < len(lines) and (lines[i + 1].startswith(":   ") or
                                          (lines[i + 1].startswith("    ") and lines[i + 1].strip())):
                i += 1
                body.append(lines[i][4:].strip())
            out.append(_line(inline(" ".join(body))))
        elif not s:
            flush()
        else:
            para.append(s)
        i += 1
    flush()
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# The SUBCOMMANDS section, from the commands
# --------------------------------------------------------------------------


def _help_paragraphs(text: str) -> list[str]:
    """click help text -> Markdown: its paragraphs, and its \\b blocks as code."""
    import inspect

    text = inspect.cleandoc(text or "")
    out = []
    for block in re.split(r"\n\s*\n", text):
        if block.startswith("\b"):
            out.append("```\n" + block[1:].strip("\n") + "\n```")
        else:
            out.append(" ".join(x.strip() for x in block.splitlines()))
    return out


def subcommands(group=None, prog: str = "ipvsctl") -> str:
    """One ## section per subcommand: usage, help, options (as --help shows them)."""
    import click

    if group is None:
        from ipvsctl.commands import ALIASES
        from ipvsctl.commands.group import group
    else:
        ALIASES = {}
    aliases: dict[str, list[str]] = {}
    for alias, name in ALIASES.items():
        aliases.setdefault(name, []).append(alias)
    parts = ["# SUBCOMMANDS", "",
             "A first word that names one of these runs it instead of an ipvsadm-style line. "
             "`ipvsctl SUBCOMMAND --help` prints the same help."]
    for name in sorted(group.commands):
        cmd = group.commands[name]
        if cmd.hidden:
            continue
        ctx = click.Context(cmd, info_name=f"{prog} {name}")
        usage = " ".join([f"{prog} {name}"] + cmd.collect_usage_pieces(ctx))
        also = f" (also: {', '.join(aliases[name])})" if name in aliases else ""
        parts += ["", f"## {name}{also}", "", "```", usage, "```"]
        for para in _help_paragraphs(cmd.help):
            parts += ["", para]
        for param in cmd.get_params(ctx):
            if not isinstance(param, click.Option):
                continue  # arguments: the usage line names them
            record = param.get_help_record(ctx)
            if record is None or "--help" in param.opts:
                continue  # every subcommand has --help: said once, above
            opts, help_text = record
            parts += ["", f"`{opts}`", f":   {' '.join(help_text.split())}"]
    return "\n".join(parts) + "\n"


def build(markdown: str, version: str | None = None) -> str:
    """The page: the Markdown source with the subcommands put in at the marker."""
    if version is None:
        from ipvsctl import __version__ as version
    if MARKER not in markdown:
        raise ValueError(f"the man page source has no {MARKER} line")
    return render(markdown.replace(MARKER, subcommands()), source=f"ipvsctl {version}")


# --------------------------------------------------------------------------
# ipvsctl --man
# --------------------------------------------------------------------------


def show(out=None) -> int:
    """The installed page: through man(1) on a terminal, else as roff text."""
    import shutil
    import subprocess
    import sys

    from ipvsctl.vocab import EXIT_READ_FAILED

    out = out or sys.stdout
    try:
        with open(PAGE, encoding="utf-8") as f:
            page = f.read()
    except OSError as e:
        sys.stderr.write(f"ipvsctl: the man page is missing ({PAGE}: {e.strerror})\n")
        return EXIT_READ_FAILED
    man = shutil.which("man")
    if man and out.isatty():
        return subprocess.run([man, "-l", "-"], input=page.encode()).returncode
    out.write(page)
    return 0
