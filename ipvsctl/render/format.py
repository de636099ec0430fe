"""How an ipvsadm listing is printed: its list flags (-n, --stats, ...).

The parser sets them (ipvsctl.grammar), the text renderer reads them
(render.text): a value of its own, so that neither imports the other.
"""

from __future__ import annotations


class Format:
    """How a listing is printed: ipvsadm's list flags (all off by default)."""

    __slots__ = FLAGS = ("numeric", "stats", "rate", "thresholds", "persistent_conn", "nosort",
                         "exact", "tun_info", "rule")  # rule: -S, print as commands

    def __init__(self, **flags: bool):
        for name in self.FLAGS:
            setattr(self, name, flags.pop(name, False))
        if flags:
            raise TypeError(f"Format has no flag {sorted(flags)[0]!r}")

    def __eq__(self, other):
        if not isinstance(other, Format):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.FLAGS)

    def __repr__(self) -> str:
        return "Format(%s)" % ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FLAGS)
