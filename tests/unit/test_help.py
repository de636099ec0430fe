"""-h and `ipvsctl help` lead a new user to the subcommands (issue 10)."""

from __future__ import annotations

import subprocess
import sys


def _ipvsctl(*args):
    return subprocess.run([sys.executable, "-m", "ipvsctl", *args], capture_output=True, text=True,
                          timeout=60)


def test_h_names_the_subcommands_json_and_the_version_option():
    r = _ipvsctl("-h")
    assert r.returncode == 0 and r.stderr == ""
    for word in ("list | ls", "watch", "restore [--json] [FILE]", "completion bash|zsh|fish",
                 "help [SUBCOMMAND]", "--json", "--version         -v"):
        assert word in r.stdout, word
    # every subcommand is named at the start of a line of its section
    from ipvsctl.commands import SUBCOMMANDS

    section = r.stdout.split("\nSubcommands (")[1]
    named = {line.split()[0] for line in section.splitlines()[1:]
             if line.startswith("  ") and not line.startswith("   ")}
    assert set(SUBCOMMANDS) - {"ls"} | {"help"} == named
    assert _ipvsctl("--help").stdout == r.stdout


def test_help_is_a_word_too():
    r = _ipvsctl("help")
    assert (r.returncode, r.stdout) == (0, _ipvsctl("-h").stdout)
    r = _ipvsctl("help", "watch")
    assert r.returncode == 0 and r.stdout.startswith("Usage: ipvsctl watch [OPTIONS]")
    assert "--interval SECONDS" in r.stdout
    r = _ipvsctl("--netns", "x", "help", "restore")
    assert r.returncode == 0 and "--dry-run" in r.stdout
    assert _ipvsctl("help", "help").stdout == _ipvsctl("-h").stdout


def test_help_of_a_word_that_is_no_subcommand_says_so():
    r = _ipvsctl("help", "lsit")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == "ipvsctl: help: `lsit' is no subcommand; did you mean `ipvsctl help list'? " \
                       "`ipvsctl help' lists them\n"
    r = _ipvsctl("help", "frobnicate")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == "ipvsctl: help: `frobnicate' is no subcommand; `ipvsctl help' lists them\n"
