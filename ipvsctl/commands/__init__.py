"""Subcommands that live in modules of their own, one module per command.

Each module defines one click command over the shared pieces of
``ipvsctl.app`` (options, ``Failure`` of ipvsctl.views, ``open_backend``),
and draws with render.layout as ``list`` does; ``register`` adds
them to the group.  ``ipvsctl.app`` calls it once, after its own commands,
and ``ipvsctl.cli.SUBCOMMANDS`` names them so the first word routes here.
The logic of each command is in a module of its own too (``ipvsctl.metrics``,
``ipvsctl.conns``, ``ipvsctl.doctor``): these modules only parse options and
print.
"""

from __future__ import annotations

#: (module under ipvsctl.commands, the click command's attribute)
COMMANDS = (
    ("metrics", "metrics_command"),
    ("conns", "conns_command"),
    ("doctor", "doctor_command"),
)


def register(group) -> None:
    import importlib

    for module, attr in COMMANDS:
        group.add_command(getattr(importlib.import_module(f"ipvsctl.commands.{module}"), attr))
