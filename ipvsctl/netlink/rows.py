"""A service's IPv4 real servers in columns, as the bulk decoder reads them.

Why: listing one service with 20,000 real servers, or a table with 100,000
of them, was mostly the cost of building and freeing objects, and under
User-Mode Linux above all of the memory they take (each fresh page costs
~80 us there).  The run decoder (``runs.decode_dest_run``) fills these
columns straight from a dump's bytes; ipvsadm's order (``order``), the plain
``-L``/``-S`` text and the views' tables read the columns; everything else
iterates and gets ordinary ``Destination`` values, built on demand.  The
values are the model's (host units, forwarding method without flag bits):
the decoder makes each distinct settings tuple so, once.
"""

from __future__ import annotations

from itertools import islice, repeat
from operator import itemgetter

from ipvsctl.model import Destination
from ipvsctl.vocab import AF_INET

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: collections.abc imports collections (start-up time)
    from collections.abc import Iterable, Iterator

#: The fields a settings tuple holds, in Destination's order (after af,
#: addr and port, before stats): named once, by the model.
SETTINGS = Destination.__slots__[3:13]
_weight = itemgetter(SETTINGS.index("weight"))
#: Up to this many servers, keys are compared whole (ordering): looking for
#: constant columns first costs more than it saves.  (Names still look for
#: them: a service's servers usually share a network and a port, and fewer
#: numbers to format pay for the look.)
_SMALL = 16


class DestinationRows:
    """The IPv4 real servers of one service in columns: a read-only sequence
    of ``Destination`` (without counters: ``stats`` is None) that holds no
    object per server.

    The address and port are six byte planes: ``planes[0..3]`` hold the
    first to fourth byte of every address, ``planes[4]`` and ``planes[5]``
    the high and low byte of every port (one bytearray each, a byte per
    server).  ``keys()`` turns them into ``(a, b, c, d, port)`` tuples, whose
    tuple order is ipvsadm's (address, port) order.  ``settings[i]`` holds
    the values of ``SETTINGS`` (Destination's fields from ``fwd`` to
    ``persist_conns``, in its order) in host units, as Destination has
    them; equal settings are usually one shared tuple.
    """

    __slots__ = ("planes", "settings", "_direction", "_reversed")

    def __init__(self, planes: tuple[bytearray, ...], settings: list[tuple]):
        self.planes = planes
        self.settings = settings
        self._direction: str | None = ""  # "" until _monotonic has looked
        self._reversed: DestinationRows | None = None  # these rows reversed (known_descending)

    def __len__(self) -> int:
        return len(self.settings)

    def key(self, i: int) -> tuple[int, int, int, int, int]:
        a, b, c, d, hi, lo = self.planes
        return (a[i], b[i], c[i], d[i], hi[i] << 8 | lo[i])

    def keys(self) -> Iterator[tuple[int, int, int, int, int]]:
        """Every server's key, in the kernel's order (built as iterated)."""
        a, b, c, d, hi, lo = self.planes
        return zip(a, b, c, d, _ports(hi, lo))

    def __getitem__(self, i: int) -> Destination:
        a, b, c, d, port = self.key(i)
        return Destination(AF_INET, "%d.%d.%d.%d" % (a, b, c, d), port, *self.settings[i])

    def weights(self) -> Iterator[int]:
        """Every server's weight, in the order of ``settings``."""
        return map(_weight, self.settings)

    @staticmethod
    def settings_dest(settings: tuple) -> Destination:
        """A Destination with these settings (and no address): for whoever
        draws each distinct settings tuple once."""
        return Destination(AF_INET, "0.0.0.0", 0, *settings)

    def __iter__(self):
        return map(self.__getitem__, range(len(self)))

    def known_ascending(self) -> None:
        """Say that the keys are known to ascend strictly (the decoder saw
        it), so that ordering costs nothing."""
        self._direction = "ascending"

    def known_descending(self, ordered: DestinationRows) -> None:
        """Say that the keys are known to descend strictly, and give the rows
        reversed (the decoder cut them from a reversed group: ``ordered``,
        known ascending), so that ordering costs nothing."""
        self._direction = "descending"
        self._reversed = ordered

    def ordered(self) -> DestinationRows | None:
        """These rows in ascending key order when the decoder made them
        (known_ascending: these; known_descending: the reversed ones), else
        None."""
        if self._direction == "ascending":
            return self
        return self._reversed

    def extend(self, other: DestinationRows) -> None:
        for mine, theirs in zip(self.planes, other.planes):
            mine += theirs
        self.settings += other.settings
        self._direction = ""
        self._reversed = None

    def has_repeats(self) -> bool:
        """True when a real server appears twice (a dump that raced a change)."""
        if self._monotonic() is not None:
            return False
        varying = self._varying()
        if not varying:  # every key the same
            return len(self) > 1
        keys = sorted(zip(*varying))
        return any(map(tuple.__eq__, keys, islice(keys, 1, None)))

    def in_key_order(self) -> tuple[tuple[bytes, ...], Iterable[tuple]]:
        """(planes, settings), both in ascending key order.

        The kernel lists a service's servers in reverse order of addition, so
        a table restored from a sorted dump comes back exactly reversed: that
        case, and an ascending one, cost a comparison per server and no sort.
        """
        direction = self._monotonic()
        if direction == "ascending":
            return self.planes, self.settings
        if direction == "descending":
            if self._reversed is not None:
                return self._reversed.planes, self._reversed.settings
            return tuple(p[::-1] for p in self.planes), reversed(self.settings)
        varying = self._varying()
        if not varying:  # every key the same: any order is the order
            return self.planes, self.settings
        keys = list(zip(*varying))
        order = sorted(range(len(keys)), key=keys.__getitem__)
        return tuple(bytes(map(p.__getitem__, order)) for p in self.planes), map(self.settings.__getitem__, order)

    def names(self, planes: tuple[bytes, ...] | None = None) -> Iterator[str]:
        """"a.b.c.d:port" of every server (in the order of ``planes``, by
        default the kernel's).  A byte plane with one value throughout (the
        first bytes of addresses in one network, a port shared by all) is
        written into the format once instead of formatted per server."""
        return self.names_of(planes or self.planes)

    @staticmethod
    def names_of(planes: tuple[bytes, ...]) -> Iterator[str]:
        """names() of any six planes (the rows of several services joined)."""
        a, b, c, d, hi, lo = planes
        parts, columns = [], []
        for plane in (a, b, c, d):
            if _constant(plane):
                parts.append(str(plane[0]))
            else:
                parts.append("%d")
                columns.append(plane)
        if _constant(hi) and _constant(lo):
            port = str(hi[0] << 8 | lo[0])
        else:
            port = "%d"
            columns.append(_ports(hi, lo))
        fmt = ".".join(parts) + ":" + port
        if not columns:
            return repeat(fmt, len(a))
        return map(fmt.__mod__, zip(*columns))

    def _varying(self) -> list[bytes]:
        """The planes that are not constant, in key significance order
        (constant planes never decide a comparison)."""
        return [p for p in self.planes if not _constant(p)]

    def _monotonic(self) -> str | None:
        """"ascending" or "descending" when the keys strictly are, else None
        (compared pairwise on the varying planes as they are zipped: nothing
        is kept; remembered)."""
        if self._direction == "" and len(self) <= _SMALL:
            # A few servers (the usual service): their keys compared whole.
            self._direction = None
            keys = list(zip(*self.planes))
            following = keys[1:]
            if all(map(tuple.__lt__, keys, following)):
                self._direction = "ascending"
            elif all(map(tuple.__gt__, keys, following)):
                self._direction = "descending"
        elif self._direction == "":
            self._direction = None
            varying = self._varying()
            if varying:
                following = [p[1:] for p in varying]
                for name, cmp in (("ascending", tuple.__lt__), ("descending", tuple.__gt__)):
                    if all(map(cmp, zip(*varying), zip(*following))):
                        self._direction = name
                        break
            elif len(self) <= 1:
                self._direction = "ascending"
        return self._direction


def _constant(plane) -> bool:
    return not plane or plane.count(plane[0]) == len(plane)


def _ports(hi, lo) -> Iterator[int]:
    """The ports from their high-byte and low-byte planes."""
    return map(int.__or__, map(int.__lshift__, hi, repeat(8)), lo)
