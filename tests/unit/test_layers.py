"""The shape of the code, held: no import cycle, each layer importing only
those below it, each value spelt in the vocabulary alone, no module too long
without saying why (docs/design.md, "The shape").

Imports are read from the source (every import statement, at any depth of a
module: a lazy import inside a function is a dependency too), not run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ipvsctl import vocab

ROOT = Path(__file__).resolve().parents[2] / "ipvsctl"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """The ipvsctl modules ``name`` imports, anywhere in it."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _reach(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for m in GRAPH[todo.pop()]:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def test_no_import_cycle():
    cycles = sorted(m for m in MODULES if m in _reach(m))
    assert not cycles, f"modules on an import cycle: {cycles}"


def test_the_checker_sees_imports_inside_functions():
    assert "ipvsctl.commands.group" in GRAPH["ipvsctl.cli"]  # imported inside _run
    assert "ipvsctl.order" in GRAPH["ipvsctl.listing"]  # imported inside table()


def test_the_vocabulary_and_the_model_stand_on_nothing():
    assert GRAPH["ipvsctl.vocab"] == set()
    assert GRAPH["ipvsctl.model"] <= {"ipvsctl.vocab"}


@pytest.mark.parametrize("module, never", [
    # renderers only format: what to read and which status applies is listing's and ops'
    ("ipvsctl.render", {"ipvsctl.ops", "ipvsctl.errors", "ipvsctl.order", "ipvsctl.backend",
                        "ipvsctl.listing", "ipvsctl.grammar", "ipvsctl.cli", "ipvsctl.commands",
                        "ipvsctl.session", "ipvsctl.netlink.backend", "ipvsctl.netlink.transport",
                        "ipvsctl.netlink.dumps"}),
    # the codec has no I/O
    ("ipvsctl.netlink.wire", {"ipvsctl.netlink.transport", "ipvsctl.netlink.dumps", "ipvsctl.netlink.backend"}),
    ("ipvsctl.netlink.codec", {"ipvsctl.netlink.transport", "ipvsctl.netlink.dumps", "ipvsctl.netlink.backend"}),
    # the socket knows nothing of dumps: those are read over it
    ("ipvsctl.netlink.transport", {"ipvsctl.netlink.dumps", "ipvsctl.netlink.consistency"}),
    # the subcommands never reach back into the ipvsadm surface
    ("ipvsctl.commands", {"ipvsctl.cli"}),
    ("ipvsctl.desired", {"ipvsctl.cli", "ipvsctl.commands"}),
    ("ipvsctl.views", {"ipvsctl.cli", "ipvsctl.commands"}),
])
def test_a_layer_never_reaches(module, never):
    own = [m for m in MODULES if m == module or m.startswith(module + ".")]
    bad = sorted((m, t) for m in own for t in _reach(m)
                 if any(t == n or t.startswith(n + ".") for n in never))
    assert not bad, f"{module} reaches {bad}"


def _words() -> set[str]:
    words = set(vocab.SCHED_FLAGS)
    for kind in (vocab.PROTOCOLS, vocab.FORWARDS, vocab.CHECKSUMS):
        for t in kind:
            words.update(w for w in (t.label, t.rule, t.option) if w and len(w) > 2)
    return words - {"-m", "-g", "-i", "-t", "-u"}


#: Strings that are a vocabulary word by chance: (file, string) -> why.
NOT_THE_WORD = {("conns.py", "UDP"): "the kernel's state of a UDP connection, in its state list"}


def test_every_name_of_a_value_is_spelt_in_the_vocabulary_only():
    """A protocol's, forwarding method's or checksum mode's ipvsadm word,
    option or -S spelling, and every -b flag name, as a string anywhere in
    ipvsctl/ but vocab.py, would be a second copy of a name map."""
    words = _words()
    found = []
    for name, path in MODULES.items():
        if name == "ipvsctl.vocab":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Constant) and node.value in words
                    and (path.name, node.value) not in NOT_THE_WORD):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert not found, found


LONG = 600


def test_no_module_is_long_without_saying_why():
    """A module over ~600 lines says at its top why it is one piece: a
    ``Size:`` paragraph in its docstring."""
    long = []
    for name, path in MODULES.items():
        text = path.read_text()
        doc = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > LONG and "\nSize: " not in "\n" + doc:
            long.append(f"{name} ({text.count(chr(10))} lines)")
    assert not long, long
