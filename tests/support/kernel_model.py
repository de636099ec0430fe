"""What a change request does to an IPVS table, to judge ipvsctl's requests
without a kernel.

Strategy: the recorded kernel states before and after a line (raw netlink
answers, see support.golden) and ipvsctl's requests for the line are all
decoded with pyroute2 (an independent decoder; a tiny attribute walker of
our own where pyroute2 leaves attributes as hex) into plain dicts.  ``apply``
performs one request on the "before" table the way ip_vs_ctl.c does; the
result must be the "after" table the kernel really had.  The model predicts
the errors that follow from the table alone (a service or real server that
exists or not); a line the kernel refused must leave the table unchanged.
"""

from __future__ import annotations

import copy
import socket
import struct

from support import golden as G

HASHED = 0x0002  # IP_VS_SVC_F_HASHED: the kernel's own bookkeeping
FWD_MASK = 0x0007
ESRCH, ENOENT, EEXIST = 3, 2, 17


def _addr(attrs: dict, raw: dict, atype: int, af: int):
    value = attrs.get("IPVS_DEST_ATTR_ADDR") if atype == 1 else None
    if isinstance(value, str):
        return value
    data = raw.get(atype)
    if data is None:
        return None
    return socket.inet_ntop(af, data[:16] if af == socket.AF_INET6 else data[:4])


def _raw_nest(message: bytes, nest_type: int) -> dict:
    top = G.nla(message, 20)
    return G.nla(top[nest_type]) if nest_type in top else {}


def service_settings(attrs: dict) -> dict:
    flags = attrs.get("IPVS_SVC_ATTR_FLAGS") or {"flags": 0, "mask": 0}
    return {
        "sched": attrs.get("IPVS_SVC_ATTR_SCHED_NAME"),
        "flags": flags["flags"] & ~HASHED,
        "mask": flags["mask"],
        "timeout": attrs.get("IPVS_SVC_ATTR_TIMEOUT"),
        "netmask": attrs.get("IPVS_SVC_ATTR_NETMASK"),
        "pe": attrs.get("IPVS_SVC_ATTR_PE_NAME") or "",
    }


def dest_identity(attrs: dict, raw: dict, service_af: int) -> tuple:
    af = attrs.get("IPVS_DEST_ATTR_ADDR_FAMILY") or service_af
    return (af, _addr(attrs, raw, 1, af), attrs.get("IPVS_DEST_ATTR_PORT"))


def dest_settings(attrs: dict) -> dict:
    return {
        "fwd": (attrs.get("IPVS_DEST_ATTR_FWD_METHOD") or 0) & FWD_MASK,
        "weight": attrs.get("IPVS_DEST_ATTR_WEIGHT"),
        "u_thresh": attrs.get("IPVS_DEST_ATTR_U_THRESH"),
        "l_thresh": attrs.get("IPVS_DEST_ATTR_L_THRESH"),
        "tun_type": attrs.get("IPVS_DEST_ATTR_TUN_TYPE"),
        "tun_port": attrs.get("IPVS_DEST_ATTR_TUN_PORT"),  # pyroute2 reads it in host order: same either side
        "tun_flags": attrs.get("IPVS_DEST_ATTR_TUN_FLAGS"),
    }


def _daemon(raw: dict) -> dict:
    def u(t, fmt):
        return struct.unpack(fmt, raw[t][:struct.calcsize(fmt)])[0] if t in raw else None

    return {
        "state": u(1, "=I"),
        "ifn": raw[2].split(b"\0", 1)[0].decode() if 2 in raw else None,
        "syncid": u(3, "=I"),
        "maxlen": u(4, "=H"),
        "group": raw.get(5) or raw.get(6),
        "port": u(7, "=H"),
        "ttl": u(8, "=B"),
    }


def _whole_messages(datagrams, family: int):
    for d in datagrams:
        for mtype, _f, _s, _p, off in G.messages(d):
            if mtype == family:
                (length,) = struct.unpack_from("=I", d, off)
                yield d[off:off + length]


def decode_state(golden: G.Golden, state: dict) -> dict:
    """The table a recorded state holds, as plain values."""
    fam = golden.family
    table: dict = {"services": {}, "dests": {}, "timeouts": None, "daemons": {}}
    for i, msg in enumerate(_whole_messages(golden.datagrams(state, "services"), fam)):
        attrs = G.nested(G.pyroute2_decode(msg), "IPVS_CMD_ATTR_SERVICE")
        key = G.service_key(attrs)
        settings = service_settings(attrs)
        settings.pop("mask")
        table["services"][key] = settings
        dests = {}
        for dmsg in _whole_messages([golden.blobs[j] for j in state["dests"][i]], fam):
            d = G.nested(G.pyroute2_decode(dmsg), "IPVS_CMD_ATTR_DEST")
            dests[dest_identity(d, _raw_nest(dmsg, 2), key[0])] = dest_settings(d)
        table["dests"][key] = dests
    for msg in _whole_messages(golden.datagrams(state, "timeouts"), fam):
        top = G.nla(msg, 20)
        table["timeouts"] = tuple(struct.unpack("=I", top[t][:4])[0] if t in top else 0 for t in (4, 5, 6))
    for msg in _whole_messages(golden.datagrams(state, "daemons"), fam):
        d = _daemon(_raw_nest(msg, 3))
        table["daemons"][d["state"]] = d
    return table


def apply(table: dict, message: bytes) -> tuple[int, dict]:
    """(errno the table alone implies, or 0; the table after the request)."""
    t = copy.deepcopy(table)
    cmd = message[16]
    m = G.pyroute2_decode(message)
    svc = G.nested(m, "IPVS_CMD_ATTR_SERVICE")
    key = G.service_key(svc) if svc else None
    services, dests = t["services"], t["dests"]
    if cmd == G.CMD_FLUSH:
        services.clear()
        dests.clear()
    elif cmd == G.CMD_ZERO:
        if key is not None and key not in services:
            return ESRCH, table
    elif cmd in (G.CMD_NEW_SERVICE, G.CMD_SET_SERVICE):
        new = service_settings(svc)
        if cmd == G.CMD_NEW_SERVICE:
            if key in services:
                return EEXIST, table
            old = {"flags": 0}
            dests[key] = {}
        else:
            if key not in services:
                return ESRCH, table
            old = services[key]
        mask = new.pop("mask")
        new["flags"] = ((old["flags"] & ~mask) | (new["flags"] & mask)) & ~HASHED
        services[key] = new
    elif cmd == G.CMD_DEL_SERVICE:
        if key not in services:
            return ESRCH, table
        del services[key]
        del dests[key]
    elif cmd in (G.CMD_NEW_DEST, G.CMD_SET_DEST, G.CMD_DEL_DEST):
        if key not in services:
            return ESRCH, table
        d = G.nested(m, "IPVS_CMD_ATTR_DEST")
        ident = dest_identity(d, _raw_nest(message, 2), key[0])
        present = ident in dests[key]
        if cmd == G.CMD_NEW_DEST and present:
            return EEXIST, table
        if cmd != G.CMD_NEW_DEST and not present:
            return ENOENT, table
        if cmd == G.CMD_DEL_DEST:
            del dests[key][ident]
        else:
            dests[key][ident] = dest_settings(d)
    elif cmd == G.CMD_SET_CONFIG:
        top = G.nla(message, 20)
        asked = [struct.unpack("=I", top[a][:4])[0] if a in top else 0 for a in (4, 5, 6)]
        t["timeouts"] = tuple(new or old for new, old in zip(asked, t["timeouts"]))
    elif cmd in (G.CMD_NEW_DAEMON, G.CMD_DEL_DAEMON):
        d = _daemon(_raw_nest(message, 3))
        present = d["state"] in t["daemons"]
        if cmd == G.CMD_NEW_DAEMON:
            if present:
                return EEXIST, table
            # The kernel fills in what was not asked (maxlen from the MTU,
            # port 8848, ttl 1): kept as None, compared where asked.
            t["daemons"][d["state"]] = d
        else:
            if not present:
                return ESRCH, table
            del t["daemons"][d["state"]]
    else:
        raise AssertionError(f"not a change command: {cmd}")
    return 0, t


def _same(model: dict, real: dict) -> bool:
    """The model's table equals the kernel's (daemon fields the request left
    to the kernel are not compared)."""
    if {k: v for k, v in model.items() if k != "daemons"} != {k: v for k, v in real.items() if k != "daemons"}:
        return False
    if model["daemons"].keys() != real["daemons"].keys():
        return False
    return all(v is None or v == real["daemons"][s][f]
               for s, d in model["daemons"].items() for f, v in d.items())


def check_change(golden: G.Golden, step: dict, changes: list[tuple[int, bytes]]) -> None:
    """ipvsctl's requests for a line do to the recorded table what the
    kernel did to it for ipvsadm's."""
    before = decode_state(golden, golden.states[step["before"]])
    after = decode_state(golden, golden.states[step["state"]])
    if step["errno"] is None:
        assert not changes, "ipvsctl sent a change for a line that never reached the kernel"
        return
    assert len(changes) == 1, f"one change request expected, ipvsctl sent {len(changes)}"
    predicted, model_after = apply(before, changes[0][1])
    if step["errno"] == 0:
        assert predicted == 0, f"the request fails (errno {predicted}) on the table the kernel accepted it on"
        assert _same(model_after, after), f"the request makes\n{model_after}\nbut the kernel had\n{after}"
    else:
        assert after == before, "the kernel refused the line, yet its table changed"
