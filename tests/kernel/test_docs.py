"""The shell examples of README.md and docs/*.md, run in a real kernel, so
that they stay true (issue 10).

The convention (also in docs/testing.md):

* A fenced block with the info string ``console`` is a transcript: a line
  ``$ COMMAND`` is a command (``> `` lines continue it, as in a shell), and
  every other line is what it prints, standard output and standard error
  together, exactly (trailing spaces included).
* The line right above the opening fence says what to do with the block:

  ``<!-- doc-test: fresh -->``
      run it in a new network namespace (loopback up), in a new working
      folder;
  ``<!-- doc-test: same -->``
      run it in the namespace and folder of the previous block run in the
      same file (the transcript goes on);
  ``<!-- doc-test: fresh, netns=NAME -->``
      ``netns=NAME`` names the new namespace, for examples that name it
      (``--netns NAME``, ``ip -n NAME``);
  ``<!-- doc-test: skip: REASON -->``
      not run; REASON says why (real traffic, counters, clocks).

* Every ``console`` block carries one of these: an unmarked block fails
  the test, so no example goes untested by accident.  Any other code block
  (a synopsis, a file's contents, the project's own commands) must not look
  like a transcript: no ``$ `` line in it, fenced or indented.  A table an
  example needs is made in the example itself, where the reader sees it.

After a deliberate change of output, ``IPVSCTL_DOCS_REGEN=1 scripts/test
tests/kernel/test_docs.py`` writes what the commands print now into the
documents: review that diff by eye before committing it.

The documents show Linux 6.1's output, whose connection table has a fixed
4096 entries (``size=4096``, ``"conn_tab_size": 4096``, doctor's
``connection hash table: 4096 buckets``).  Kernels whose
connection table resizes (7.x: ``/proc/sys/net/ipv4/vs/conn_lfactor``
exists) report 0 for a namespace without services and a size that follows
the load after that, so there the size is masked on both sides before they
are compared; nothing else is adapted.

Commands run with bash inside the namespace: ``ipvsctl`` is the installed
command, the output is not a terminal and 80 columns wide, Python writes
unbuffered (so standard output and standard error interleave as on a
terminal).  Namespaces a block creates itself (``ip netns add``) are deleted
afterwards.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import pytest
from nsutil import NETNS_DIR, NetNS, _ip_batch, delete_many

ROOT = Path(__file__).resolve().parents[2]
REGEN = os.environ.get("IPVSCTL_DOCS_REGEN") == "1"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- doc-test: (.*) -->$")

DOC_CONN_TAB_SIZE = 4096
_SIZE = re.compile(r'(\(size=|"conn_tab_size": ?|connection hash table: )\d+')
RESIZING_CONN_TABLE = os.path.exists("/proc/sys/net/ipv4/vs/conn_lfactor")


def comparable(text: str | None) -> str | None:
    """Output as compared here: on a kernel whose table resizes, without its size."""
    if text is None or not RESIZING_CONN_TABLE:
        return text
    return _SIZE.sub(lambda m: m.group(1) + "N", text)


def as_documented(text: str) -> str:
    """What a command printed here, with the table size the documents show."""
    if not RESIZING_CONN_TABLE:
        return text
    return _SIZE.sub(lambda m: f"{m.group(1)}{DOC_CONN_TAB_SIZE}", text)


class Block:
    def __init__(self, path: Path, line: int, info: str, marker: str | None, text: list[str]):
        self.path, self.line, self.info, self.marker, self.text = path, line, info, marker, text

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def options(self) -> dict:
        """The marker's words: {"fresh": True, "netns": "ex", ...} or {"skip": reason}."""
        m = self.marker or ""
        if m.startswith("skip:"):
            return {"skip": m[5:].strip()}
        opts = {}
        for word in (w.strip() for w in m.split(",")):
            key, eq, value = word.partition("=")
            opts[key] = value if eq else True
        return opts

    def commands(self) -> list[tuple[str, str]]:
        """(command, expected output) of each ``$`` line of a transcript."""
        out: list[tuple[str, list[str]]] = []
        for line in self.text:
            if line.startswith("$ ") or line == "$":
                out.append((line[2:], []))
            elif (line.startswith("> ") or line == ">") and out and not out[-1][1]:
                out[-1] = (out[-1][0] + "\n" + line[2:], out[-1][1])
            elif out:
                out[-1][1].append(line)
            else:
                raise AssertionError(f"{self.name}: output before the first command: {line!r}")
        return [(cmd, "".join(x + "\n" for x in lines)) for cmd, lines in out]


INDENTED: list[str] = []  # "path:line" of "$ " lines in indented blocks


def blocks(path: Path) -> list[Block]:
    found = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(```+)(\S*)\s*$", lines[i])
        if not fence:
            if lines[i].startswith("    $ "):
                INDENTED.append(f"{path.relative_to(ROOT)}:{i + 1}")
            i += 1
            continue
        ticks, info = fence.groups()
        marker = MARKER.match(lines[i - 1]) if i else None
        end = i + 1
        while end < len(lines) and lines[end].rstrip() != ticks:
            end += 1
        found.append(Block(path, i + 1, info, marker.group(1) if marker else None,
                           lines[i + 1:end]))
        i = end + 1
    return found


ALL = [b for path in DOCS for b in blocks(path)]
RUN = [b for b in ALL if b.info == "console" and b.marker and "skip" not in b.options()]


def test_every_transcript_is_marked():
    """Each console block says how it runs (or why it does not); no
    transcript hides in a block without ``console``."""
    unmarked = [b.name for b in ALL if b.info == "console" and b.marker is None]
    assert not unmarked, f"console blocks without a <!-- doc-test: ... --> line: {unmarked}"
    bad = [b.name for b in ALL if b.marker and b.info != "console"]
    assert not bad, f"doc-test markers on blocks that are not console blocks: {bad}"
    hidden = [b.name for b in ALL if b.info != "console" and any(x.startswith("$ ") for x in b.text)]
    assert not hidden, f"transcripts without the console info string: {hidden}"
    assert not INDENTED, f"indented transcripts (fence them as console blocks): {INDENTED}"
    for b in ALL:
        opts = b.options()
        if b.marker and "skip" in opts:
            assert opts["skip"], f"{b.name}: a skip says why"
        elif b.marker:
            assert ("fresh" in opts) != ("same" in opts), f"{b.name}: fresh or same: {b.marker}"
            assert set(opts) <= {"fresh", "same", "netns"}, f"{b.name}: {b.marker}"


def _sessions():
    """The runnable blocks grouped: a fresh block and the same blocks after it."""
    groups: list[list[Block]] = []
    for b in RUN:
        if "fresh" in b.options() or not groups or groups[-1][0].path != b.path:
            groups.append([b])
        else:
            groups[-1].append(b)
    return groups


SESSIONS = _sessions()


def _script(commands: list[str], workdir: str) -> str:
    parts = ["exec 2>&1", f"cd {workdir}"]
    for i, cmd in enumerate(commands):
        parts.append(f"printf '\\0%d\\0' {i}")
        parts.append(cmd)
    parts.append(f"printf '\\0%d\\0' {len(commands)}")
    return "\n".join(parts) + "\n"


def _env(home: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS")}
    env.update(PATH=os.path.dirname(sys.executable) + ":" + env.get("PATH", "/usr/bin:/bin"),
               COLUMNS="80", PYTHONUNBUFFERED="1", HOME=home, LANG="C.UTF-8")
    return env


def _rewrite(block: Block, results) -> None:
    """Put what the commands printed into the block (IPVSCTL_DOCS_REGEN)."""
    lines = []
    for cmd, out in results:
        first, *more = cmd.split("\n")
        lines.append("$ " + first)
        lines += [("> " + x) if x else ">" for x in more]
        lines += out.splitlines()
    old = "\n".join(["```console", *block.text, "```"])
    text = block.path.read_text()
    assert text.count(old) == 1, f"{block.name}: the block is not unique, cannot rewrite it"
    block.path.write_text(text.replace(old, "\n".join(["```console", *lines, "```"])))


@pytest.mark.parametrize("session", SESSIONS, ids=[g[0].name for g in SESSIONS])
def test_examples(session):
    first = session[0].options()
    assert "fresh" in first, f"{session[0].name}: 'same' with no fresh block before it"
    name = first.get("netns") or f"doctest{os.getpid()}"
    ns = NetNS(name)
    assert not os.path.exists(ns.path), f"namespace {name} exists already"
    before = set(os.listdir(NETNS_DIR)) if NETNS_DIR.exists() else set()
    _ip_batch([f"netns add {name}"])
    problems = []
    try:
        ns.set_link_up("lo")
        with tempfile.TemporaryDirectory() as workdir:
            for block in session:
                cmds = block.commands()
                r = ns.run(["bash", "-c", _script([c for c, _ in cmds], workdir)],
                           env=_env(workdir), timeout=120)
                pieces = r.stdout.split("\0")
                got = {int(pieces[k]): pieces[k + 1] for k in range(1, len(pieces) - 1, 2)}
                for i, (cmd, want) in enumerate(cmds):
                    if comparable(got.get(i)) != comparable(want):
                        problems.append(f"{block.name}: $ {cmd}\n--- the doc says\n{want}"
                                        f"--- it prints\n{got.get(i)}")
                if REGEN:
                    _rewrite(block, [(cmd, as_documented(got.get(i, "")))
                                     for i, (cmd, _) in enumerate(cmds)])
    finally:
        made = (set(os.listdir(NETNS_DIR)) if NETNS_DIR.exists() else set()) - before
        delete_many([NetNS(n) for n in sorted(made | {name})])
    assert not problems, "\n\n".join(problems)
