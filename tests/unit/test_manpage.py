"""The ipvsctl(8) man page: up to date, complete, rendered by man(1) without a
warning, installed by pip where man finds it, and shown by `ipvsctl --man`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ipvsctl import manpage
from ipvsctl.grammar import OPTIONS

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "docs" / "ipvsctl.8.md"


def page() -> str:
    return Path(manpage.PAGE).read_text(encoding="utf-8")


def rendered(width: int = 80) -> subprocess.CompletedProcess:
    env = dict(os.environ, MANWIDTH=str(width), LC_ALL="C.UTF-8", MANPAGER="cat", PAGER="cat")
    env.pop("MAN_KEEP_FORMATTING", None)
    return subprocess.run(["man", "--warnings=w", "-l", manpage.PAGE], capture_output=True,
                          text=True, env=env, timeout=120)


def test_checked_in_page_is_what_the_sources_make():
    made = manpage.build(SOURCE.read_text(encoding="utf-8"))
    assert made == page(), "ipvsctl/data/ipvsctl.8 is out of date: run scripts/gen-man"


@pytest.mark.parametrize("width", [80, 120])
def test_man_renders_it_without_warnings(width):
    assert shutil.which("man"), "man(1) is missing: scripts/setup installs man-db"
    r = rendered(width)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = r.stdout
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "SUBCOMMANDS", "EXIT STATUS",
                    "FILES", "EXAMPLES", "SEE ALSO"):
        assert f"\n{heading}\n" in text, heading
    assert "‐" not in text  # no typographic hyphens: options print with the ASCII minus


def test_man_would_warn():
    """The check is not vacuous: a broken request makes man(1) warn (--warnings=w:
    every groff warning; "all" would leave out undefined macros)."""
    bad = Path(os.environ.get("TMPDIR", "/tmp")) / f"ipvsctl-bad-{os.getpid()}.8"
    bad.write_text(page().replace(".SH NAME", ".SH NAME\n.BOGUS request\n\\f[Nope]x", 1))
    try:
        env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
        r = subprocess.run(["man", "--warnings=w", "-l", str(bad)], capture_output=True, text=True,
                           env=env, timeout=120)
        assert r.stderr != ""
    finally:
        bad.unlink()


def test_it_covers_every_option_subcommand_and_exit_status():
    roff = page()
    for opt in OPTIONS:
        assert manpage.escape(f"--{opt.long}") in roff, f"--{opt.long} is not on the page"
        if opt.short:
            assert f"\\fB{manpage.escape('-' + opt.short)}\\fR" in roff, f"-{opt.short} is not on the page"
    from ipvsctl.commands.group import group as cli
    from ipvsctl.commands import SUBCOMMANDS

    assert manpage.escape("ipvsctl help [OPTIONS] [SUBCOMMAND]") in roff
    assert set(SUBCOMMANDS) - {"ls"} | {"help"} == set(cli.commands)  # the page's section lists these
    for name in SUBCOMMANDS:
        name = {"ls": "list"}.get(name, name)
        assert f'.SS "{name}' in roff, name
        for param in cli.commands[name].params:
            for spelling in getattr(param, "opts", []):
                if spelling.startswith("-"):
                    assert manpage.escape(spelling) in roff, f"{name} {spelling}"
    exits = roff.split(".SH EXIT STATUS")[1].split(".SH")[0]
    for status in ("0", "1", "2", "130", "255"):
        assert f"\\fB{status}\\fR" in exits
    files = roff.split(".SH FILES")[1].split(".SH")[0]
    for path in ("/proc/net/ip_vs", "/proc/net/ip_vs_conn", "/proc/sys/net/ipv4/vs/"):
        assert manpage.escape(path) in files


def test_markdown_subset():
    roff = manpage.render("# Name\n\nA `--x` and *y* and **z**, [see](http://x).\n\n"
                          "- item one\n  continued\n\n`-a`\n:   Does a.\n    More.\n\n```\n.dot -x\n```\n")
    assert roff.splitlines()[3:] == [
        ".SH NAME", ".PP", "A \\fB\\-\\-x\\fR and \\fIy\\fR and \\fBz\\fR, see.",
        ".IP \\(bu 2", "item one continued", ".TP", "\\fB\\-a\\fR", "Does a. More.",
        ".PP", ".RS 4", ".nf", "\\&.dot \\-x", ".fi", ".RE"]


def test_pip_install_puts_it_where_man_finds_it(tmp_path):
    """A real `pip install` (from a copy of the project, offline) into a
    prefix: man finds the page from PREFIX/bin on PATH, no MANPATH needed."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("bin", "ipvsctl"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    prefix = tmp_path / "prefix"
    ours = Path(sys.executable).parent / "ipvsctl"
    had_ours = ours.exists()
    # --ignore-installed: without it pip would first uninstall the ipvsctl
    # of the environment running the tests (a --prefix install does that).
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "-I",
                        "--no-build-isolation", "--disable-pip-version-check", "--prefix", str(prefix),
                        str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ours.exists() == had_ours  # the environment running the tests is untouched
    installed = prefix / "share" / "man" / "man8" / "ipvsctl.8"
    assert installed.read_text(encoding="utf-8") == page()
    env = {k: v for k, v in os.environ.items() if k not in ("MANPATH", "MANOPT")}
    env["PATH"] = f"{prefix / 'bin'}:/usr/bin:/bin"
    r = subprocess.run(["man", "-w", "ipvsctl"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == str(installed), r.stderr
    # and the package carries it, for --man
    assert list(prefix.glob("lib/python*/site-packages/ipvsctl/data/ipvsctl.8"))


def test_ipvsctl_man_prints_the_page_when_not_on_a_terminal():
    r = subprocess.run([sys.executable, "-m", "ipvsctl", "--man"], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout == page() and r.stderr == ""
