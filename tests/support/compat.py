"""Where ipvsctl's output differs from ipvsadm 1.31's on purpose (docs/compat.md),
as functions of the real outputs: the expected text is always derived from
what ipvsadm printed, never typed."""

from __future__ import annotations

import re


def unsigned_fwmarks(text: str) -> str:
    """ipvsadm 1.31 text with its negative fwmarks printed unsigned, as
    ipvsctl prints them on purpose.  Where ipvsadm padded the service name
    to 33 columns (--stats, --rate), the longer name is padded the same."""
    def listed(mo) -> str:
        prefix, mark, suffix, pad = mo.groups()
        old = prefix + mark + suffix
        new = prefix + str(int(mark) % 2**32) + suffix
        if len(old) < 33 <= len(old + pad):  # a %-33s field, then the next field's own blanks
            return "%-33s" % new + pad[33 - len(old):]
        return new + pad

    text = re.sub(r"^(FWM  )(-\d+)((?: IPv6)?)( *)", listed, text, flags=re.M)
    return re.sub(r"(-f )(-\d+)", lambda mo: mo.group(1) + str(int(mo.group(2)) % 2**32), text)


def without_saved_thresholds(text: str) -> str:
    """ipvsctl -S adds -x/-y, which ipvsadm -S drops (checked separately)."""
    return re.sub(r" -[xy] \d+(?=( -[xy] \d+)*$)", "", text, flags=re.M)


def is_save(args) -> bool:
    return "-S" in args or "--save" in args or any(a.startswith("-S") for a in args)


def comparable(args, ipvsadm_result: tuple, ipvsctl_result: tuple) -> tuple[tuple, tuple]:
    """(status, stdout, stderr) of both tools, each with the documented
    differences taken out, ready for ==."""
    status, out, err = ipvsadm_result
    want = (status, unsigned_fwmarks(out), err)
    got = ipvsctl_result
    if is_save(args):
        got = (got[0], without_saved_thresholds(got[1]), got[2])
    return want, tuple(got)
