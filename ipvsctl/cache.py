"""One bounded cache, for every memo of ipvsctl.

Strategy: the memos on hot paths (service keys parsed from a restore
stream, the encoded identity of each service, the layouts learned from the
kernel's messages) are plain dicts, read in C, with one rule for staying
small: when a cache holds ``limit`` entries, the next new one empties it
first.  A big restore or listing then costs one rebuild per ``limit`` new
keys, and memory stays bounded whatever the input.  A dict subclass rather
than functools.lru_cache, which would cost start-up time (and an LRU's
bookkeeping on every hit).
"""

from __future__ import annotations


class BoundedCache(dict):
    """A dict of at most ``limit`` entries.  With ``make``, a missing key's
    value is ``make(key)``, stored (``cache[key]`` never raises KeyError);
    ``put`` stores a value made elsewhere."""

    __slots__ = ("limit", "make")

    def __init__(self, limit: int, make=None):
        super().__init__()
        self.limit = limit
        self.make = make

    def __missing__(self, key):
        if self.make is None:
            raise KeyError(key)
        value = self.make(key)
        self.put(key, value)
        return value

    def put(self, key, value) -> None:
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
