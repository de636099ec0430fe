"""ipvsctl's own subcommands: one module each in this package, and the
names that route a command line here.

Strategy: ``ipvsctl.cli`` reads the first word of a line; when it names a
subcommand (``SUBCOMMANDS``), the line goes to ``group.run_app``, which
loads click and the subcommands.  Importing this package costs nothing (no
click): the ipvsadm path imports it to know the names.  Each module defines
one click command (``command``) that only reads its options and hands them
to the module that does the work (``views`` for list and watch,
``restore``/``jsonrestore``/``undo``, ``desired``, ``metrics``, ``conns``,
``doctor``), and prints.  Failures leave as ``session.Failure`` values: the
error boundary (``cli.main``) prints ``PROG: message`` and exits with its
status (1: a read failed, 2: bad input or no such namespace, 255: the
kernel refused a change, as ipvsadm).
"""

from __future__ import annotations

#: The subcommands, each the module of that name in this package.
COMMANDS = ("list", "watch", "restore", "completion", "diff", "apply", "drain", "metrics", "conns",
            "doctor", "help")
#: Other words for them (hidden from help).
ALIASES = {"ls": "list"}
#: The first words that route a line here (``help`` is answered by ipvsctl.cli itself).
SUBCOMMANDS = tuple(c for c in (*COMMANDS, *ALIASES) if c != "help")
