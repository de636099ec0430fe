"""One backend's codec: the encoders and decoders, with what they remember.

Strategy: the codec is pure (no I/O) and split along its seams:

    wire      netlink and generic-netlink framing (also the transport's)
    encode    IPVS requests: model values -> messages
    decode    the generic decoders: messages -> model values (the reference)
    layouts   the fast decoders: a layout learned per dump, one unpack per entry
    runs      the columnar decoder: a received buffer at once (rows.DestinationRows)

The fast paths remember things: the encoded identity of each service (a
restore names few services many times), and the layouts learned from the
kernel's messages.  All of it lives here, in one object per backend, each
memo a ``cache.BoundedCache`` with the one rule for staying small; nothing
is kept in module globals, so two backends (two namespaces, two kernels in
a test) never share or clear each other's.
"""

from __future__ import annotations

from _socket import AF_INET

from ipvsctl.cache import BoundedCache
from ipvsctl.netlink import decode, encode, layouts, runs

#: Services whose encoded identity is kept (a restore of 110,000 lines names 10,000).
IDENTS_KEPT = 1 << 16


def _no_stats(buf, start: int, end: int) -> None:
    return None


class Codec:
    """The encoders and decoders a backend uses, with their memos."""

    __slots__ = ("idents", "stats_layouts", "dest_layouts", "run_layouts", "service_layouts",
                 "_dump_dests_heads")

    def __init__(self):
        self.idents = BoundedCache(IDENTS_KEPT, encode.service_ident)
        self.stats_layouts = BoundedCache(layouts.LAYOUTS_KEPT)
        self.dest_layouts = BoundedCache(layouts.LAYOUTS_KEPT)
        self.run_layouts = BoundedCache(layouts.LAYOUTS_KEPT)
        self.service_layouts = BoundedCache(layouts.LAYOUTS_KEPT)  # length -> [ServiceLayout]
        self._dump_dests_heads: dict[tuple[int, int], bytes] = {}  # (family, identity length) -> head

    # --- encoding ---------------------------------------------------------
    def request(self, family: int, request) -> bytes:
        """The message of one backend.Request (ValueError if malformed)."""
        return encode.encode_request(family, request, self.idents)

    def get_service(self, family: int, key) -> bytes:
        return encode.encode_get_service(family, key, idents=self.idents)

    def dump_dests(self, family: int, key) -> bytes:
        return encode.encode_dump_dests(family, key, idents=self.idents)

    def dump_dests_of(self, family: int, ident: bytes) -> bytes:
        """encode.encode_dump_dests_of, its headers (encode.dump_dests_head)
        made once per family and identity length (a table listing sends one
        per service)."""
        head = self._dump_dests_heads.get((family, len(ident)))
        if head is None:
            head = self._dump_dests_heads[(family, len(ident))] = encode.dump_dests_head(family, len(ident))
        return head + ident

    # --- decoding ---------------------------------------------------------
    def stats(self, buf, start: int, end: int):
        return layouts.decode_stats(buf, start, end, self.stats_layouts)

    def service(self, payload):
        return layouts.decode_service(payload, self.service_layouts, self.stats)

    def service_without_counters(self, payload):
        """decode_service with ``stats`` None: the plain listings print none."""
        return layouts.decode_service(payload, self.service_layouts, _no_stats)

    def service_key(self, payload):
        return layouts.decode_service_key(payload, self.service_layouts)

    def dest(self, payload, default_af: int = AF_INET):
        return layouts.decode_dest(payload, default_af, self.dest_layouts)

    def dest_run(self, run):
        """A run of real-server entries in columns, or None (see runs)."""
        return runs.decode_dest_run(run, self.run_layouts)
