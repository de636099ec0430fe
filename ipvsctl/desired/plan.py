"""plan(desired, live, scope, prune) -> Plan: what converges the live table.

Strategy: a pure function over model values (no I/O), and the only place
that knows what the kernel can change in place.  Both sides are normalised
first, so that a table compared with the file it was loaded from is equal.

Identity (what the kernel looks an object up by, so what can never be
edited): a service is (af, protocol, address, port) or (af, fwmark); a real
server is (af, address, port) within its service.

Edited in place (IPVS_CMD_SET_SERVICE / IPVS_CMD_SET_DEST; ip_vs_edit_service
and ip_vs_edit_dest in net/netfilter/ipvs/ip_vs_ctl.c, each checked in the
real kernel by tests/kernel/test_apply_inplace.py, 6.1 and 7.2):

* service: scheduler, scheduler flags, persistence and its timeout, netmask,
  persistence engine (set, changed or removed), one-packet scheduling;
* real server: weight, forwarding method, thresholds, tunnel type, tunnel
  port and tunnel checksum.

An edit keeps the service's connections and counters.  Every edit carries
every field (the kernel replaces the whole entry: ipvsadm's ``-e`` without
``-m`` quietly turns a NAT server into direct routing), taken from the
desired value.

What cannot be edited is identity: a real server whose port changes (also
when a new forwarding method makes it take the service's port) is removed
and added again, and the plan says so in words on both steps.

Normalisation (both sides): service flags without the kernel's HASHED bit;
the timeout and netmask of a service without persistence count as 0 and the
full mask (the kernel keeps them but only persistence reads them, and ``-S``
does not write them); the forwarding method without its flag bits; tunnel
fields only where the tunnel type uses them (a GUE port, a GUE or GRE
checksum), none without tunnelling.  Defaults (wlc, ``-p`` = 360 s, the
full netmask, IPv6 masks as prefix lengths) are filled in by the parsers.

Order of the steps: per desired service, in file order: add or edit the
service, remove real servers (first, so that a server that moves to another
port never meets itself), edit, add; then, with ``prune``, remove the
services in scope that the file does not name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ipvsctl import backend as b
from ipvsctl import model as m
from ipvsctl.labels import server_label, service_label
from ipvsctl.desired.scope import Scope, ScopeError

ADD_SERVICE = b.OP_ADD_SERVICE
EDIT_SERVICE = b.OP_EDIT_SERVICE
DEL_SERVICE = b.OP_DEL_SERVICE
ADD_DEST = b.OP_ADD_DEST
EDIT_DEST = b.OP_EDIT_DEST
DEL_DEST = b.OP_DEL_DEST

#: The fields compared, named as in the JSON schema (docs/json.md).
SERVICE_FIELDS = ("scheduler", "sched_flags", "persistent", "timeout", "netmask", "pe", "one_packet")
DEST_FIELDS = ("forward", "weight", "u_threshold", "l_threshold", "tunnel")


# --------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------


def full_mask(af: int) -> int:
    return 128 if af == m.AF_INET6 else m.IPV4_FULL_MASK


def normal_service(svc: m.Service) -> m.Service:
    flags = svc.flags & ~m.SVC_F_HASHED
    persistent = flags & m.SVC_F_PERSISTENT
    return m.Service(key=svc.key, scheduler=svc.scheduler, flags=flags,
                     timeout=svc.timeout if persistent else 0,
                     netmask=svc.netmask if persistent else full_mask(svc.key.af),
                     pe_name=svc.pe_name or "")


def normal_dest(d: m.Destination) -> m.Destination:
    fwd = d.fwd & m.FWD_MASK
    tun_type, tun_port, tun_flags = m.TUN_IPIP, 0, m.TUN_F_NOCSUM
    if fwd == m.FWD_TUNNEL:
        tun_type = d.tun_type
        if tun_type == m.TUN_GUE:
            tun_port, tun_flags = d.tun_port, d.tun_flags
        elif tun_type == m.TUN_GRE:
            tun_flags = d.tun_flags
    return m.Destination(af=d.af, addr=d.addr, port=d.port, fwd=fwd, weight=d.weight,
                         u_threshold=d.u_threshold, l_threshold=d.l_threshold,
                         tun_type=tun_type, tun_port=tun_port, tun_flags=tun_flags)


def same_service(a: m.Service, b_: m.Service) -> bool:
    return a == b_ or normal_service(a) == normal_service(b_)


def same_dest(a: m.Destination, b_: m.Destination) -> bool:
    return a == b_ or normal_dest(a) == normal_dest(b_)


def dest_ident(d: m.Destination) -> tuple:
    return (d.af, d.addr, d.port)


# --------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One field, old -> new, as JSON values (the schema's names and forms)."""

    field: str
    old: object
    new: object


@dataclass(frozen=True)
class Step:
    """One change request.  ``service``/``dest``: what is sent (add, edit),
    or what is removed (delete: the live value); ``old``: the live value an
    edit or delete replaces (for the record: undo comes from the snapshot)."""

    op: str
    key: m.ServiceKey
    service: m.Service | None = None
    dest: m.Destination | None = None
    old: m.Service | m.Destination | None = None
    changes: tuple[Change, ...] = ()
    note: str = ""

    def request(self) -> b.Request:
        if self.op in (ADD_SERVICE, EDIT_SERVICE):
            return b.Request(self.op, service=self.service)
        if self.op == DEL_SERVICE:
            return b.Request(self.op, service=self.key)
        return b.Request(self.op, service=self.key, dest=self.dest)

    @property
    def is_service(self) -> bool:
        return self.op in (ADD_SERVICE, EDIT_SERVICE, DEL_SERVICE)

    @property
    def label(self) -> str:
        if self.dest is None:
            return service_label(self.key)
        return f"{service_label(self.key)} -> {server_label(self.dest)}"


@dataclass
class ServicePlan:
    """What happens to one service: ``add``, ``change`` or ``remove``."""

    key: m.ServiceKey
    action: str
    desired: m.Service | None
    live: m.Service | None
    steps: list[Step] = field(default_factory=list)
    live_dests: list[m.Destination] = field(default_factory=list)

    @property
    def label(self) -> str:
        return service_label(self.key)

    def count(self, op: str) -> int:
        return sum(1 for s in self.steps if s.op == op)


_ACTION_COUNTS = {"add": "services_added", "change": "services_changed", "remove": "services_removed"}


@dataclass
class Plan:
    services: list[ServicePlan]  # only those with something to do
    unchanged: int  # services named by the file and already as desired
    scope: Scope
    prune: bool

    @property
    def steps(self) -> list[Step]:
        return [s for sp in self.services for s in sp.steps]

    @property
    def in_sync(self) -> bool:
        return not self.services

    def counts(self) -> dict:
        c = {"services_added": 0, "services_changed": 0, "services_removed": 0,
             "services_unchanged": self.unchanged,
             "servers_added": 0, "servers_changed": 0, "servers_removed": 0}
        for sp in self.services:
            c[_ACTION_COUNTS[sp.action]] += 1
            c["servers_added"] += sp.count(ADD_DEST)
            c["servers_changed"] += sp.count(EDIT_DEST)
            c["servers_removed"] += sp.count(DEL_DEST)
            if sp.action == "remove":
                c["servers_removed"] += len(sp.live_dests)
        return c

    def leaving(self) -> list[tuple[m.ServiceKey, m.Destination]]:
        """The real servers this plan removes (one by one, or with their
        service): what ``apply --drain`` drains first."""
        out = []
        for sp in self.services:
            if sp.action == "remove":
                out.extend((sp.key, d) for d in sp.live_dests)
            else:
                out.extend((sp.key, s.dest) for s in sp.steps if s.op == DEL_DEST)
        return out


def service_fields(svc: m.Service) -> dict:
    from ipvsctl.render.json import service_dict

    doc = service_dict(svc, [])
    return {f: doc[f] for f in SERVICE_FIELDS}


def dest_fields(d: m.Destination) -> dict:
    from ipvsctl.render.json import destination_dict

    doc = destination_dict(d)
    return {f: doc[f] for f in DEST_FIELDS}


def _changes(old: dict, new: dict) -> tuple[Change, ...]:
    return tuple(Change(f, old[f], new[f]) for f in old if old[f] != new[f])


def check_scope(desired, scope: Scope, origins: dict | None = None) -> None:
    """ScopeError when the file names a service outside every scope."""
    if scope.everything:
        return
    for svc, _ in desired:
        if not scope.contains(svc.key):
            where = f"{origins[svc.key]}: " if origins and svc.key in origins else ""
            raise ScopeError(f"{where}{service_label(svc.key)} is outside every --scope "
                             f"({', '.join(scope.texts)}); nothing outside them is touched")


def plan(desired, live, scope: Scope | None = None, prune: bool = False) -> Plan:
    """The steps that turn ``live`` into ``desired`` within ``scope``.

    ``desired`` and ``live``: sequences of (Service, [Destination]).  Without
    ``prune`` only the services ``desired`` names are reconciled (their real
    servers included); with it, services in scope that it does not name are
    removed.  ScopeError if ``desired`` names a service outside ``scope``.
    """
    scope = scope if scope is not None else Scope()
    check_scope(desired, scope, getattr(desired, "origins", None))
    live_by_key = {svc.key: (svc, dests) for svc, dests in live}
    services: list[ServicePlan] = []
    unchanged = 0
    named = set()
    for svc, dests in desired:
        named.add(svc.key)
        current = live_by_key.get(svc.key)
        if current is None:
            sp = ServicePlan(svc.key, "add", svc, None)
            sp.steps.append(Step(ADD_SERVICE, svc.key, service=svc))
            sp.steps.extend(Step(ADD_DEST, svc.key, dest=d) for d in dests)
            services.append(sp)
            continue
        live_svc, live_dests = current
        sp = ServicePlan(svc.key, "change", svc, live_svc)
        if not same_service(svc, live_svc):
            sp.steps.append(Step(EDIT_SERVICE, svc.key, service=svc, old=live_svc, changes=_changes(
                service_fields(normal_service(live_svc)), service_fields(normal_service(svc)))))
        sp.steps.extend(_dest_steps(svc.key, dests, live_dests))
        if sp.steps:
            services.append(sp)
        else:
            unchanged += 1
    if prune:
        from ipvsctl.order import sort_services

        gone = [(svc, dests) for svc, dests in live if svc.key not in named and scope.contains(svc.key)]
        for svc, dests in sort_services(gone, service_of=lambda entry: entry[0]):
            dests = list(dests)
            n = len(dests)
            note = f"with its {n} real server{'s' if n != 1 else ''}" if n else ""
            sp = ServicePlan(svc.key, "remove", None, svc, live_dests=dests)
            sp.steps.append(Step(DEL_SERVICE, svc.key, service=svc, old=svc, note=note))
            services.append(sp)
    return Plan(services, unchanged, scope, prune)


def _dest_steps(key: m.ServiceKey, desired: list, live) -> list[Step]:
    live_by_ident = {dest_ident(d): d for d in live}
    wanted = {dest_ident(d) for d in desired}
    removed = [d for ident, d in live_by_ident.items() if ident not in wanted]
    added = [d for d in desired if dest_ident(d) not in live_by_ident]
    # A server that only changes port is, for the kernel, another server.
    removed_by_addr = {(d.af, d.addr): d for d in removed}
    added_by_addr = {(d.af, d.addr): d for d in added}
    steps = []
    for d in sorted(removed, key=lambda d: (d.af, _addr_key(d), d.port)):
        twin = added_by_addr.get((d.af, d.addr))
        note = ""
        if twin is not None:
            note = (f"moves to port {twin.port}: the kernel names a real server by address and port, "
                    "so this is a delete and add, and its connections and counters end")
        steps.append(Step(DEL_DEST, key, dest=d, old=d, note=note))
    for d in desired:
        old = live_by_ident.get(dest_ident(d))
        if old is not None and not same_dest(d, old):
            steps.append(Step(EDIT_DEST, key, dest=d, old=old, changes=_changes(
                dest_fields(normal_dest(old)), dest_fields(normal_dest(d)))))
    for d in added:
        twin = removed_by_addr.get((d.af, d.addr))
        note = f"replaces port {twin.port}: delete and add" if twin is not None else ""
        steps.append(Step(ADD_DEST, key, dest=d, note=note))
    return steps


def _addr_key(d: m.Destination):
    import ipaddress

    return int(ipaddress.ip_address(d.addr))


def table_of(entries) -> list[tuple[m.Service, list[m.Destination]]]:
    """A live table read with counters=False, materialised (DestinationRows
    become lists of Destination) so that it can be kept as a snapshot."""
    return [(svc, list(dests)) for svc, dests in entries]
