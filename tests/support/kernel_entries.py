"""IPVS dump entries and replies shaped as the kernel writes them
(ip_vs_genl_fill_*), built independently of ipvsctl's encoders with the
generic attribute helpers: what the unit tier's fake kernels answer with and
the decoders are tested on.  ``pad`` puts IPVS_STATS_ATTR_PAD before each
u64, as architectures that want 8-byte alignment do (User-Mode Linux)."""

from __future__ import annotations

import socket
import struct

from ipvsctl.model import AF_INET, Destination, Service, Stats
from ipvsctl.vocab import SVC_F_HASHED
from ipvsctl.netlink import constants as C
from ipvsctl.netlink import decode, wire

#: The IPVS family id the fakes answer as.
FAMILY = 0x1C


U64_PAD = wire.nla(C.IPVS_STATS_ATTR_PAD, b"")


def k_u64(atype: int, v: int, pad: bool) -> bytes:
    # nla_put_u64_64bit: a PAD attribute first where u64s must be 8-aligned.
    return (U64_PAD if pad else b"") + wire.nla(atype, struct.pack("=Q", v))


def k_stats(container: int, s: Stats, pad: bool) -> bytes:
    # ip_vs_genl_fill_stats: 32-bit counters except the two byte counters.
    v = (s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes, s.cps, s.inpps, s.outpps, s.inbps, s.outbps)
    parts = []
    for i, atype in enumerate(decode.STATS_ORDER):
        if atype in (C.IPVS_STATS_ATTR_INBYTES, C.IPVS_STATS_ATTR_OUTBYTES):
            parts.append(k_u64(atype, v[i], pad))
        else:
            parts.append(wire.nla_u32(atype, v[i] & 0xFFFFFFFF))
    return wire.nest(container, *parts)


def k_stats64(container: int, s: Stats, pad: bool) -> bytes:
    v = (s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes, s.cps, s.inpps, s.outpps, s.inbps, s.outbps)
    return wire.nest(container, *(k_u64(a, v[i], pad) for i, a in enumerate(decode.STATS_ORDER)))


def kernel_dest_entry(d: Destination, pad: bool = False, *, with_tun: bool = True, with_af: bool = True,
                      with_stats64: bool = True) -> bytes:
    """The payload of one IPVS_CMD_NEW_DEST dump message, as fill_dest writes it."""
    s = d.stats or Stats()
    raw = socket.inet_pton(d.af, d.addr).ljust(16, b"\0")
    parts = [
        wire.nla(C.IPVS_DEST_ATTR_ADDR, raw),
        wire.nla_be16(C.IPVS_DEST_ATTR_PORT, d.port),
        wire.nla_u32(C.IPVS_DEST_ATTR_FWD_METHOD, d.fwd),
        wire.nla_u32(C.IPVS_DEST_ATTR_WEIGHT, d.weight),
    ]
    if with_tun:
        parts += [
            wire.nla_u8(C.IPVS_DEST_ATTR_TUN_TYPE, d.tun_type),
            wire.nla_be16(C.IPVS_DEST_ATTR_TUN_PORT, d.tun_port),
            wire.nla_u16(C.IPVS_DEST_ATTR_TUN_FLAGS, d.tun_flags),
        ]
    parts += [
        wire.nla_u32(C.IPVS_DEST_ATTR_U_THRESH, d.u_threshold),
        wire.nla_u32(C.IPVS_DEST_ATTR_L_THRESH, d.l_threshold),
        wire.nla_u32(C.IPVS_DEST_ATTR_ACTIVE_CONNS, d.active_conns),
        wire.nla_u32(C.IPVS_DEST_ATTR_INACT_CONNS, d.inact_conns),
        wire.nla_u32(C.IPVS_DEST_ATTR_PERSIST_CONNS, d.persist_conns),
    ]
    if with_af:
        parts.append(wire.nla_u16(C.IPVS_DEST_ATTR_ADDR_FAMILY, d.af))
    parts.append(k_stats(C.IPVS_DEST_ATTR_STATS, s, pad))
    if with_stats64:
        parts.append(k_stats64(C.IPVS_DEST_ATTR_STATS64, s, pad))
    return bytes([C.IPVS_CMD_NEW_DEST, 1, 0, 0]) + wire.nest(C.IPVS_CMD_ATTR_DEST, *parts)


def kernel_service_entry(svc: Service, pad: bool = False) -> bytes:
    k = svc.key
    s = svc.stats or Stats()
    parts = [wire.nla_u16(C.IPVS_SVC_ATTR_AF, k.af)]
    if k.fwmark:
        parts.append(wire.nla_u32(C.IPVS_SVC_ATTR_FWMARK, k.fwmark))
    else:
        parts += [
            wire.nla_u16(C.IPVS_SVC_ATTR_PROTOCOL, k.protocol),
            wire.nla(C.IPVS_SVC_ATTR_ADDR, socket.inet_pton(k.af, k.addr).ljust(16, b"\0")),
            wire.nla_be16(C.IPVS_SVC_ATTR_PORT, k.port),
        ]
    mask = struct.pack(">I", svc.netmask) if k.af == AF_INET else struct.pack("=I", svc.netmask)
    parts += [
        wire.nla_str(C.IPVS_SVC_ATTR_SCHED_NAME, svc.scheduler),
        wire.nla_str(C.IPVS_SVC_ATTR_PE_NAME, svc.pe_name) if svc.pe_name else b"",
        # The kernel reports its HASHED bookkeeping flag on every listed service.
        wire.nla(C.IPVS_SVC_ATTR_FLAGS, struct.pack("=II", svc.flags | SVC_F_HASHED, 0xFFFFFFFF)),
        wire.nla_u32(C.IPVS_SVC_ATTR_TIMEOUT, svc.timeout),
        wire.nla(C.IPVS_SVC_ATTR_NETMASK, mask),
        k_stats(C.IPVS_SVC_ATTR_STATS, s, pad),
        k_stats64(C.IPVS_SVC_ATTR_STATS64, s, pad),
    ]
    return bytes([C.IPVS_CMD_NEW_SERVICE, 1, 0, 0]) + wire.nest(C.IPVS_CMD_ATTR_SERVICE, *parts)
