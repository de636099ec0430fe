"""A Plan shown three ways: text for people, ipvsadm rules, a JSON document.

Strategy: pure functions of a Plan.  The rules reuse ``-S``'s own line
writer (render.text), so a ``-E``/``-e`` line says every field exactly as
``-S`` would and ``ipvsadm -R`` reads it back; ``-D``/``-d`` name only the
identity.  The JSON document's field names and value forms are those of
``list --json`` (docs/json.md); its own shape is documented in
docs/apply.md.
"""

from __future__ import annotations

from ipvsctl import model as m
from ipvsctl import vocab as v
from ipvsctl.desired import plan as P
from ipvsctl.labels import server_label, service_label
from ipvsctl.render.json import server_identity, service_identity

ARROW = "\u2192"
_MARKS = {P.ADD_DEST: "+", P.EDIT_DEST: "~", P.DEL_DEST: "-"}


# --------------------------------------------------------------------------
# Values in words
# --------------------------------------------------------------------------


def value_text(name: str, value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name == "sched_flags":
        return ",".join(value) if value else "none"
    if name == "tunnel":
        return tunnel_text(value)
    return str(value)


def tunnel_text(t: dict | None) -> str:
    if t is None:
        return "none"
    if t["type"] == v.TUNNELS.key(m.TUN_IPIP):
        return t["type"]
    if t["type"] == v.TUNNELS.key(m.TUN_GUE):
        return f"{t['type']} port {t['port']} {t['checksum']}"
    return f"{t['type']} {t['checksum']}"


def service_summary(svc: m.Service) -> str:
    """'rr', 'wlc, persistent 360 s, mask 255.255.255.0, pe sip', ..."""
    f = P.service_fields(svc)
    parts = [f["scheduler"]]
    if f["sched_flags"]:
        parts.append("flags " + ",".join(f["sched_flags"]))
    if f["persistent"]:
        parts.append(f"persistent {f['timeout']} s")
        if svc.netmask != P.full_mask(svc.key.af):
            parts.append(f"mask {f['netmask']}")
    if f["pe"]:
        parts.append(f"pe {f['pe']}")
    if f["one_packet"]:
        parts.append("one-packet")
    return ", ".join(parts)


def dest_summary(d: m.Destination) -> str:
    """'masq, weight 1', 'tunnel gue port 6080 csum, weight 2, thresholds 100/10'."""
    f = P.dest_fields(d)
    forward = f["forward"] if f["tunnel"] is None else f"tunnel {tunnel_text(f['tunnel'])}"
    parts = [str(forward), f"weight {f['weight']}"]
    if f["u_threshold"] or f["l_threshold"]:
        parts.append(f"thresholds {f['u_threshold']}/{f['l_threshold']}")
    return ", ".join(parts)


def changes_text(changes) -> str:
    return "; ".join(f"{c.field}: {value_text(c.field, c.old)} {ARROW} {value_text(c.field, c.new)}"
                     for c in changes)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def counts_text(plan: P.Plan) -> str:
    c = plan.counts()
    svc = [f"{c['services_' + k]} {k}" for k in ("added", "changed", "removed") if c["services_" + k]]
    srv = [f"{c['servers_' + k]} {k}" for k in ("added", "changed", "removed") if c["servers_" + k]]
    parts = []
    if svc:
        parts.append("services: " + ", ".join(svc))
    if srv:
        parts.append("real servers: " + ", ".join(srv))
    parts.append(f"{_plural(c['services_unchanged'], 'service')} unchanged")
    return "; ".join(parts)


# --------------------------------------------------------------------------
# Text for people (diff)
# --------------------------------------------------------------------------


def plan_text(plan: P.Plan) -> str:
    """Per service what is added, changed (field: old -> new) or removed."""
    if plan.in_sync:
        return f"in sync ({counts_text(plan)})\n"
    lines = []
    for sp in plan.services:
        if sp.action == "add":
            n = sp.count(P.ADD_DEST)
            lines.append(f"{sp.label}: add ({service_summary(sp.desired)}; {_plural(n, 'real server')})")
        elif sp.action == "remove":
            note = sp.steps[0].note
            lines.append(f"{sp.label}: remove" + (f" ({note})" if note else ""))
            continue
        else:
            counts = [f"{sp.count(op)} {word}" for op, word in
                      ((P.ADD_DEST, "added"), (P.EDIT_DEST, "changed"), (P.DEL_DEST, "removed"))
                      if sp.count(op)]
            lines.append(f"{sp.label}: change" + (f" (real servers: {', '.join(counts)})" if counts else ""))
        for step in sp.steps:
            if step.op == P.EDIT_SERVICE:
                lines.append(f"    {changes_text(step.changes)}")
            elif step.op in _MARKS:
                lines.append(_dest_line(step))
    lines.append(counts_text(plan))
    return "\n".join(lines) + "\n"


def _dest_line(step: P.Step) -> str:
    mark = _MARKS[step.op]
    what = changes_text(step.changes) if step.op == P.EDIT_DEST else (
        dest_summary(step.dest) if step.op == P.ADD_DEST else "")
    text = f"  {mark} {server_label(step.dest)}"
    if what:
        text += f"  {what}"
    if step.note:
        text += f"  ({step.note})"
    return text


def step_line(step: P.Step) -> str:
    """One line per change, for apply's report."""
    if step.op == P.ADD_SERVICE:
        return f"+ {service_label(step.key)} ({service_summary(step.service)})"
    if step.op == P.EDIT_SERVICE:
        return f"~ {service_label(step.key)}: {changes_text(step.changes)}"
    if step.op == P.DEL_SERVICE:
        return f"- {service_label(step.key)}" + (f" ({step.note})" if step.note else "")
    line = f"{_MARKS[step.op]} {step.label}"
    if step.op == P.ADD_DEST:
        line += f" ({dest_summary(step.dest)})"
    elif step.op == P.EDIT_DEST:
        line += f": {changes_text(step.changes)}"
    if step.note and step.op == P.DEL_DEST:
        line += f" ({step.note})"
    return line


# --------------------------------------------------------------------------
# ipvsadm rules
# --------------------------------------------------------------------------

_RULE_FORMAT = None


def _fmt():
    global _RULE_FORMAT
    if _RULE_FORMAT is None:
        from ipvsctl.render.format import Format

        _RULE_FORMAT = Format(rule=True, numeric=True)
    return _RULE_FORMAT


def step_rule(step: P.Step) -> str:
    """The ipvsadm command line of one step (without the newline)."""
    from ipvsctl.render import text

    fmt = _fmt()
    if step.op in (P.ADD_SERVICE, P.EDIT_SERVICE):
        line = next(iter(text.service_text(step.service, [], fmt))).rstrip("\n")
        return line if step.op == P.ADD_SERVICE else "-E" + line[2:]
    name = text.service_name(m.Service(step.key), fmt)
    if step.op == P.DEL_SERVICE:
        return f"-D {name}"
    if step.op == P.DEL_DEST:
        return f"-d {name} -r {server_label(step.dest)}"
    pieces = list(text.service_text(m.Service(step.key), [step.dest], fmt))
    line = pieces[1].rstrip("\n")
    return line if step.op == P.ADD_DEST else "-e" + line[2:]


def plan_rules(plan: P.Plan) -> str:
    """Lines for ``ipvsadm -R`` that converge the table (nothing when in sync)."""
    return "".join(step_rule(s) + "\n" for s in plan.steps)


# --------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------


def _changes_doc(changes) -> list[dict]:
    return [{"field": c.field, "old": c.old, "new": c.new} for c in changes]


def step_doc(step: P.Step) -> dict:
    return {
        "op": step.op,
        "service": service_identity(step.key),
        "server": server_identity(step.dest) if step.dest is not None and not step.is_service else None,
        "rule": step_rule(step),
        "changes": _changes_doc(step.changes),
        "note": step.note or None,
    }


def _server_doc(step: P.Step) -> dict:
    return {
        **server_identity(step.dest),
        "action": {P.ADD_DEST: "add", P.EDIT_DEST: "change", P.DEL_DEST: "remove"}[step.op],
        "old": P.dest_fields(P.normal_dest(step.old)) if step.old is not None else None,
        "new": P.dest_fields(P.normal_dest(step.dest)) if step.op != P.DEL_DEST else None,
        "changes": _changes_doc(step.changes),
        "note": step.note or None,
    }


def _service_doc(sp: P.ServicePlan) -> dict:
    edit = next((s for s in sp.steps if s.op == P.EDIT_SERVICE), None)
    if sp.action == "remove":
        servers = [{**server_identity(d), "action": "remove", "old": P.dest_fields(P.normal_dest(d)),
                    "new": None, "changes": [], "note": None} for d in sp.live_dests]
    else:
        servers = [_server_doc(s) for s in sp.steps if not s.is_service]
    return {
        "service": service_identity(sp.key),
        "action": sp.action,
        "old": P.service_fields(P.normal_service(sp.live)) if sp.live is not None else None,
        "new": P.service_fields(P.normal_service(sp.desired)) if sp.desired is not None else None,
        "changes": _changes_doc(edit.changes) if edit is not None else [],
        "note": (sp.steps[0].note or None) if sp.action == "remove" else None,
        "servers": servers,
    }


def plan_doc(plan: P.Plan, sysctls: dict | None = None) -> dict:
    """The documented plan document (docs/apply.md)."""
    return {
        "in_sync": plan.in_sync,
        "prune": plan.prune,
        "scope": list(plan.scope.texts),
        "counts": plan.counts(),
        "services": [_service_doc(sp) for sp in plan.services],
        "steps": [step_doc(s) for s in plan.steps],
        "sysctls": sysctls,
    }
