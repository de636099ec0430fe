"""Does the unit tier notice small changes to ipvsadm-compatible behaviour?

Applies each hand mutation below, alone, to a temporary copy of the
checkout and runs the unit tier there (``pytest tests/unit``, on the host,
no kernel); a mutation that no unit test fails is reported as SURVIVED and
the script exits 1.  These are the nine mutations of issue 11 ("the output
contract is not guarded without the kernel tier"), each a one-line edit a
refactor could make by accident.

    .venv/bin/python tests/mutations.py            # all (about a minute)
    .venv/bin/python tests/mutations.py persistent # those whose name contains a word

Each mutation must still apply: if the code moved, the script says so
(and the list here needs the new spelling).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

# (name, file, text to replace, replacement): each text must occur exactly once.
MUTATIONS = [
    ("column width (real-server weight)", "ipvsctl/render/text.py",
     '" %-7s %-6d %-10d %-10d" % (v.FORWARDS', '" %-7s %-5d %-10d %-10d" % (v.FORWARDS'),
    ("title spacing", "ipvsctl/render/text.py",
     '    return ("Prot LocalAddress:Port Scheduler Flags\\n"\n            "  -> RemoteAddress:Port           Forward Weight',
     '    return ("Prot LocalAddress:Port  Scheduler Flags\\n"\n            "  -> RemoteAddress:Port           Forward Weight'),
    ("persistent -> persist", "ipvsctl/render/text.py",
     'parts.append(" persistent %d" % svc.timeout)', 'parts.append(" persist %d" % svc.timeout)'),
    ("large-number divisor", "ipvsctl/render/text.py",
     'return "%8dK" % (n // 1000)', 'return "%8dK" % (n // 1024)'),
    ("-S prints the header", "ipvsctl/listing.py",
     'header=as_json or (kind == TABLE and cmd.name == "list"))', 'header=as_json or kind == TABLE)'),
    ("-Z 0.0.0.0:0 zeroes one service", "ipvsctl/ops.py",
     "    if cmd.fwmark or cmd.port or (cmd.addr and any(cmd.addr)):\n        return cmd.service_key()\n    return None",
     "    return cmd.service_key()"),
    ("one-packet scheduling check", "ipvsctl/grammar.py",
     "and not cmd.fwmark and cmd.protocol != m.IPPROTO_UDP:", "and not cmd.fwmark and cmd.protocol == m.IPPROTO_SCTP:"),
    ("2^31 wrap boundary", "ipvsctl/order.py", "_SPAN = 2**31\n", "_SPAN = 2**31 + 1\n"),
    ("an error message", "ipvsctl/errors.py",
     '(b.OP_ADD_DEST, E.ESRCH): "Service not defined"', '(b.OP_ADD_DEST, E.ESRCH): "Service not found"'),
]

_FAILED = re.compile(r"^FAILED (\S+)", re.M)


def _copy(dest: Path) -> None:
    for part in ("ipvsctl", "tests", "pyproject.toml"):
        src = PROJECT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / part)


def run(name: str, path: str, old: str, new: str) -> tuple[bool, list[str]]:
    with tempfile.TemporaryDirectory(prefix="ipvsctl-mutant-") as tmp:
        root = Path(tmp)
        _copy(root)
        target = root / path
        text = target.read_text()
        if text.count(old) != 1:
            raise SystemExit(f"{name}: the text to mutate occurs {text.count(old)} times in {path}; update MUTATIONS")
        target.write_text(text.replace(old, new))
        # The checkout is installed as a path entry (.pth); PYTHONPATH comes
        # first, so the copy's ipvsctl is the one imported, in child processes too.
        env = {**os.environ, "PYTHONPATH": str(root)}
        r = subprocess.run([sys.executable, "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider",
                            "-o", "addopts=", "-rf"],
                           cwd=root, env=env, capture_output=True, text=True)
        failed = _FAILED.findall(r.stdout)
        return r.returncode != 0, failed


def main(argv: list[str]) -> int:
    chosen = [m for m in MUTATIONS if not argv or any(w in m[0] for w in argv)]
    survived = 0
    for name, path, old, new in chosen:
        caught, failed = run(name, path, old, new)
        if caught:
            shown = "\n    ".join(failed[:4]) + (f"\n    ... and {len(failed) - 4} more" if len(failed) > 4 else "")
            print(f"caught   {name}: {len(failed)} failing test(s)\n    {shown}", flush=True)
        else:
            survived += 1
            print(f"SURVIVED {name}", flush=True)
    print(f"{len(chosen) - survived} of {len(chosen)} mutations caught by the unit tier")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
