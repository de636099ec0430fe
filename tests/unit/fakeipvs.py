"""An IPVS table in memory, for the unit tests of the layers above the kernel.

It answers change requests with the errno values the real kernel gives (each
proven by the kernel tier: tests/kernel/test_netlink_backend.py and
tests/kernel/test_apply*.py): EEXIST for an add of what exists, ESRCH for a
service that does not, ENOENT for a missing real server or an unknown
scheduler.  Edits replace the whole entry, as ip_vs_edit_service/_dest do.
"""

from __future__ import annotations

import errno

from ipvsctl import backend as b
from ipvsctl import model as m

SCHEDULERS = {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"}


class FakeIPVS:
    def __init__(self, table=(), schedulers=SCHEDULERS):
        self.services: dict = {}
        self.dests: dict = {}
        self.schedulers = set(schedulers)
        self.sent: list[b.Request] = []  # every change request, in order
        self.batches: list[int] = []  # size of each apply_many call
        self.before_batch = None  # callable(self, requests), e.g. to send a signal
        self.conns: dict = {}  # (key, ident) -> (active, inactive, persist)
        for svc, dests in table:
            self.services[svc.key] = svc
            self.dests[svc.key] = {(d.af, d.addr, d.port): d for d in dests}

    # --- reads ---------------------------------------------------------
    def info(self):
        return m.Info(0x010201, 4096)

    def close(self):
        pass

    def table(self, counters=True):
        return [(svc, [self._with_conns(k, d) for d in self.dests[k].values()])
                for k, svc in self.services.items()]

    def destinations(self, key):
        if key not in self.services:
            raise b.KernelError(errno.ESRCH, b.OP_GET_DESTS)
        return [self._with_conns(key, d) for d in self.dests[key].values()]

    def _with_conns(self, key, d):
        a, i, p = self.conns.get((key, (d.af, d.addr, d.port)), (0, 0, 0))
        return d.replace(active_conns=a, inact_conns=i, persist_conns=p)

    # --- changes -------------------------------------------------------
    def apply(self, req):
        err = self._one(req)
        self.sent.append(req)
        if err:
            raise b.KernelError(err, req.op)

    def apply_many(self, requests):
        reqs = list(requests)
        if self.before_batch is not None:
            self.before_batch(self, reqs)
        self.batches.append(len(reqs))
        errors = {}
        for i, req in enumerate(reqs):
            self.sent.append(req)
            err = self._one(req)
            if err:
                errors[i] = b.KernelError(err, req.op)
        return errors

    def _one(self, req) -> int:
        op = req.op
        if op in (b.OP_ADD_SERVICE, b.OP_EDIT_SERVICE):
            svc = req.service
            exists = svc.key in self.services
            if op == b.OP_ADD_SERVICE and exists:
                return errno.EEXIST
            if op == b.OP_EDIT_SERVICE and not exists:
                return errno.ESRCH
            if svc.scheduler not in self.schedulers:
                return errno.ENOENT
            self.services[svc.key] = m.Service(svc.key, svc.scheduler, svc.flags, svc.timeout,
                                               svc.netmask, svc.pe_name)
            self.dests.setdefault(svc.key, {})
            return 0
        key = req.service.key if isinstance(req.service, m.Service) else req.service
        if op == b.OP_DEL_SERVICE:
            if key not in self.services:
                return errno.ESRCH
            del self.services[key]
            del self.dests[key]
            return 0
        if key not in self.services:
            return errno.ESRCH
        d = req.dest
        ident = (d.af, d.addr, d.port)
        per = self.dests[key]
        if op == b.OP_ADD_DEST:
            if ident in per:
                return errno.EEXIST
            per[ident] = _plain(d)
            return 0
        if ident not in per:
            return errno.ENOENT
        if op == b.OP_EDIT_DEST:
            per[ident] = _plain(d)
        else:
            del per[ident]
        return 0


def _plain(d: m.Destination) -> m.Destination:
    return m.Destination(d.af, d.addr, d.port, d.fwd, d.weight, d.u_threshold, d.l_threshold,
                         d.tun_type, d.tun_port, d.tun_flags)
