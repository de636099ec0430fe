"""``ipvsctl doctor``: what this director's kernel and table mean, one line each.

Strategy: ``gather`` reads everything once (is IPVS there, which
schedulers and persistence engines are loaded or loadable, the sysctls
that change what a drain or a failover does, the table, the sync
daemons) into a ``Facts`` value; ``diagnose`` is a pure function from
Facts to ``Finding``s, so every rule is unit-tested on made-up facts and
the kernel tests only check that each real condition is read and
reported.

A finding is ``ok``, a ``note`` (how a setting behaves here: nothing is
wrong) or a ``problem`` (something will not work as a director should:
exit status 1).  Every finding has an id; ``--ignore ID`` turns that id's
problems into notes, for a setup that is meant that way (e.g. a director
whose peer takes turns with it, so that only one of its sync daemons runs
at a time).

Where things come from:

* IPVS: /proc/net/ip_vs of the namespace (present once ip_vs is loaded),
  then the table and the daemons over netlink.  A missing IPVS is never
  loaded by doctor (ipvsadm and ipvsctl load it on first use; doctor only
  looks).
* Modules: /proc/modules (loaded), /sys/module (built in), and otherwise
  a dry run (``-n``) of the kernel's own module loader, the program in
  /proc/sys/kernel/modprobe: IPVS asks the kernel to load ``ip_vs_NAME``
  when a service names a scheduler that is not loaded, and that program is
  what the kernel runs.
* Sysctls: /proc/sys/net/ipv4/vs/* and the forwarding switches, read from
  inside the namespace (they are per namespace).
"""

from __future__ import annotations

import os

from ipvsctl import model as m
from ipvsctl import vocab as v

# The kernel's schedulers: every kernel has the classic ones (ipvsadm
# 1.31's); one without those of later kernels (twos: Linux 6.2) is not
# missing anything it ought to have.
SCHEDULERS = v.SCHEDULERS
CLASSIC_SCHEDULERS = tuple(s for s in SCHEDULERS if s not in v.SCHEDULERS_SINCE)
PERSISTENCE_ENGINES = v.ENGINES

VS_SYSCTLS = ("conntrack", "expire_nodest_conn", "expire_quiescent_template", "conn_reuse_mode",
              "run_estimation", "sync_version", "sync_threshold", "sync_refresh_period",
              "sync_retries", "sync_persist_mode", "sync_ports", "sync_sock_size", "sync_qlen_max")
FORWARDING = {"ipv4": "/proc/sys/net/ipv4/ip_forward",
              "ipv6": "/proc/sys/net/ipv6/conf/all/forwarding"}

OK, NOTE, PROBLEM = "ok", "note", "problem"


class Finding:
    __slots__ = ("id", "status", "message", "ignored")

    def __init__(self, id: str, status: str, message: str):
        self.id = id
        self.status = status
        self.message = message
        self.ignored = False

    def as_dict(self) -> dict:
        return {"id": self.id, "status": self.status, "message": self.message,
                "ignored": self.ignored}

    def __repr__(self) -> str:
        return f"Finding({self.id!r}, {self.status!r}, {self.message!r})"


class Facts:
    """What doctor knows about the director (all plain values, for tests)."""

    def __init__(self, kernel_release: str = "", ipvs_loaded: bool = True, info=None,
                 modules: dict[str, str] | None = None, sysctls: dict[str, str | None] | None = None,
                 forwarding: dict[str, str | None] | None = None, table=(), daemons=(),
                 timeouts=None, read_error: str | None = None):
        self.kernel_release = kernel_release
        self.ipvs_loaded = ipvs_loaded
        self.info = info
        self.modules = modules or {}  # "ip_vs_rr" -> loaded | built-in | loadable | missing
        self.sysctls = sysctls or {}  # name -> text, None when the kernel has no such sysctl
        self.forwarding = forwarding or {}
        self.table = list(table)
        self.daemons = list(daemons)
        self.timeouts = timeouts
        self.read_error = read_error


# --------------------------------------------------------------------------
# Reading the facts
# --------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _namespace_files() -> tuple[bool, dict, dict]:
    """(IPVS present, vs sysctls, forwarding), read by this thread in its namespace."""
    present = os.path.exists("/proc/thread-self/net/ip_vs") or os.path.exists("/proc/net/ip_vs")
    sysctls = {name: _read(f"/proc/sys/net/ipv4/vs/{name}") for name in VS_SYSCTLS}
    forwarding = {k: _read(v) for k, v in FORWARDING.items()}
    return present, sysctls, forwarding


def module_states(names, modprobe: str | None = None) -> dict[str, str]:
    """{module: loaded | built-in | loadable | missing}."""
    import subprocess

    loaded = set()
    text = _read("/proc/modules") or ""
    for line in text.splitlines():
        loaded.add(line.split(" ", 1)[0])
    if modprobe is None:
        modprobe = _read("/proc/sys/kernel/modprobe") or ""
    states = {}
    for name in names:
        if name in loaded:
            states[name] = "loaded"
        elif os.path.isdir(f"/sys/module/{name}"):
            states[name] = "built-in"
        elif modprobe and os.access(modprobe, os.X_OK):
            try:
                r = subprocess.run([modprobe, "-n", "-q", name], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
                states[name] = "loadable" if r.returncode == 0 else "missing"
            except (OSError, subprocess.SubprocessError):
                states[name] = "missing"
        else:
            states[name] = "missing"  # no loader: the kernel cannot load it on demand
    return states


def gather(netns: str | None = None, open_backend=None) -> Facts:
    """Read the facts of the director (of network namespace ``netns``).

    ``open_backend(netns)`` opens the netlink backend (ipvsctl.session's by
    default).  Raises NetnsNotFound for a namespace that does not exist.
    """
    import platform

    if netns is None:
        present, sysctls, forwarding = _namespace_files()
    else:
        from ipvsctl.netlink.netns import in_netns

        present, sysctls, forwarding = in_netns(netns, _namespace_files)
    modules = module_states(["ip_vs"] + [f"ip_vs_{s}" for s in SCHEDULERS]
                            + [f"ip_vs_pe_{p}" for p in PERSISTENCE_ENGINES])
    facts = Facts(platform.release(), present, modules=modules, sysctls=sysctls,
                  forwarding=forwarding)
    if not present:
        return facts
    if open_backend is None:
        from ipvsctl.session import open_backend
    from ipvsctl import listing
    from ipvsctl.backend import KernelError

    try:
        backend = open_backend(netns)
    except KernelError as e:
        facts.read_error = str(e)
        return facts
    try:
        facts.info = backend.info()
        facts.table = listing.table(backend, counters=False, sort=False)
        facts.daemons = backend.daemons()
        facts.timeouts = backend.timeouts()
    except KernelError as e:
        facts.read_error = str(e)
    finally:
        backend.close()
    return facts


# --------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------


def _release(text: str) -> tuple[int, int]:
    """'6.1.0-18-amd64' -> (6, 1); unknown -> (0, 0)."""
    parts = text.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def _label(svc: m.Service) -> str:
    from ipvsctl.labels import service_label

    return service_label(svc.key)


def _some(labels: list[str], most: int = 3) -> str:
    shown = ", ".join(labels[:most])
    return shown + (f" and {len(labels) - most} more" if len(labels) > most else "")


def _modules_line(kind: str, names, modules: dict[str, str], prefix: str,
                  expected=()) -> tuple[str, str]:
    """One line on a set of modules: ok when every ``expected`` one can be
    used, a note when one of those is missing, a problem when none can."""
    by_state: dict[str, list[str]] = {}
    for name in names:
        by_state.setdefault(modules.get(prefix + name, "missing"), []).append(name)
    parts = []
    for state, words in (("loaded", "loaded"), ("built-in", "built in"),
                         ("loadable", "loadable on first use"), ("missing", "not in this kernel")):
        if by_state.get(state):
            parts.append(f"{words}: {' '.join(by_state[state])}")
    missing = set(by_state.get("missing", ()))
    if missing == set(names):
        status = PROBLEM
    elif missing & set(expected):
        status = NOTE
    else:
        status = OK
    return status, f"{kind}: " + "; ".join(parts)


def diagnose(f: Facts) -> list[Finding]:
    out: list[Finding] = []
    add = lambda id, status, message: out.append(Finding(id, status, message))  # noqa: E731

    # --- IPVS itself, schedulers, persistence engines ---------------------
    if not f.ipvs_loaded:
        state = f.modules.get("ip_vs", "missing")
        if state in ("loadable",):
            add("ipvs", PROBLEM, "IPVS is not loaded: `modprobe ip_vs` loads it (ipvsadm and ipvsctl "
                                 "also load it when they first change the table)")
        else:
            add("ipvs", PROBLEM, f"IPVS is not available: Linux {f.kernel_release} has no ip_vs "
                                 "module that can be loaded (CONFIG_IP_VS)")
    elif f.read_error:
        add("ipvs", PROBLEM, f"IPVS is loaded but its table cannot be read: {f.read_error}")
    else:
        v = f"IPVS {f.info.version_text} is loaded" if f.info else "IPVS is loaded"
        # Linux 7 sizes its connection hash table as it goes (0 while empty).
        size = (f" (connection hash table: {f.info.conn_tab_size} buckets)"
                if f.info and f.info.conn_tab_size else "")
        add("ipvs", OK, v + size)
    status, text = _modules_line("schedulers", SCHEDULERS, f.modules, "ip_vs_", CLASSIC_SCHEDULERS)
    add("schedulers", status, text)
    status, text = _modules_line("persistence engines", PERSISTENCE_ENGINES, f.modules, "ip_vs_pe_",
                                 PERSISTENCE_ENGINES)
    add("persistence-engines", status, text)
    if not f.ipvs_loaded:
        return out

    table = f.table
    s = f.sysctls
    persistent = [svc for svc, _ in table if svc.flags & m.SVC_F_PERSISTENT]
    tcp_timeout = f.timeouts.tcp if f.timeouts else 900

    # --- sysctls ----------------------------------------------------------
    v = s.get("conntrack")
    if v is None:
        add("conntrack", NOTE, "conntrack: not in this kernel (built without CONFIG_IP_VS_NFCT): IPVS "
                               "connections are never kept in netfilter's connection tracking")
    elif v == "0":
        add("conntrack", NOTE, "conntrack = 0: connections IPVS handles bypass netfilter's connection "
                               "tracking after scheduling (faster); firewall rules that match on "
                               "conntrack state (-m state, -m conntrack, nft ct) do not see them")
    else:
        add("conntrack", NOTE, f"conntrack = {v}: conntrack entries are kept for IPVS connections, so "
                               "stateful firewall rules and SNAT see them (costs memory per connection)")

    v = s.get("expire_nodest_conn")
    if v == "0":
        add("expire_nodest_conn", NOTE,
            "expire_nodest_conn = 0: when a real server is deleted, packets of its open connections are "
            f"dropped silently until each times out (TCP: {tcp_timeout} s); drain with weight 0 before "
            "deleting, or set 1 so that clients see the connection end at their next packet")
    elif v is not None:
        add("expire_nodest_conn", OK,
            f"expire_nodest_conn = {v}: the connections of a deleted real server end at their next "
            "packet, so clients reconnect at once (to another real server)")

    v = s.get("expire_quiescent_template")
    if v is not None:
        if not persistent:
            add("expire_quiescent_template", OK,
                f"expire_quiescent_template = {v}: no persistent service here, so it changes nothing")
        elif v == "0":
            longest = max(svc.timeout for svc in persistent)
            add("expire_quiescent_template", NOTE,
                "expire_quiescent_template = 0: a client of a persistent service keeps going to a real "
                "server set to weight 0 until its persistence template expires (up to "
                f"{longest} s here): draining {_some([_label(x) for x in persistent])} takes that long")
        else:
            add("expire_quiescent_template", OK,
                f"expire_quiescent_template = {v}: persistent clients of a real server set to weight 0 "
                "move to another real server at their next connection, so drains of persistent "
                "services finish with the open connections")

    v = s.get("conn_reuse_mode")
    if v is not None:
        try:
            mode = int(v)
        except ValueError:
            mode = -1
        if mode == 0:
            text = ("conn_reuse_mode = 0: a new connection from a client port still in the table goes "
                    "to the real server the old one went to, even one set to weight 0 or deleted: busy "
                    "clients that reuse ports keep reaching drained servers")
        else:
            text = (f"conn_reuse_mode = {v}: a new connection from a client port still in the table is "
                    "scheduled afresh when that is safe (the old one in TIME_WAIT, NAT"
                    + (", or FIN_WAIT, direct routing" if mode & 2 else "")
                    + "; or its real server gone, with expire_nodest_conn)")
        text += ("; the switch exists since Linux 4.2 (before, always as 0); before Linux 5.9, modes 1 "
                 "and 2 with conntrack = 1 dropped the first packet of such a connection (1 s delays)")
        if mode > 0 and s.get("conntrack") not in (None, "0") and _release(f.kernel_release) < (5, 9):
            add("conn_reuse_mode", PROBLEM,
                f"conn_reuse_mode = {v} with conntrack = {s.get('conntrack')} on Linux "
                f"{f.kernel_release} (before 5.9): the first SYN of a connection that reuses a client "
                "port is dropped, so such connections wait 1 s; set conn_reuse_mode 0 here, or run 5.9+")
        else:
            add("conn_reuse_mode", NOTE, text)

    v = s.get("run_estimation")
    if v is None:
        add("run_estimation", OK, "run_estimation: not in this kernel (rates are always estimated)")
    elif v == "0":
        add("run_estimation", NOTE,
            "run_estimation = 0: the kernel does not estimate rates, so every rate is 0 (ipvsadm --rate, "
            "ipvsctl watch, the ipvs_*_per_second metrics); the counters still count")
    else:
        add("run_estimation", OK,
            f"run_estimation = {v}: the kernel estimates connection, packet and byte rates every 2 s")

    # --- sync daemons -----------------------------------------------------
    roles = {d.state: d for d in f.daemons}
    master, backup = roles.get(m.DAEMON_MASTER), roles.get(m.DAEMON_BACKUP)
    if master and backup:
        add("sync-daemons", OK, f"sync daemons: master (on {master.mcast_ifn}, syncid {master.syncid}) "
                                f"and backup (on {backup.mcast_ifn}, syncid {backup.syncid}) both run")
    elif master or backup:
        d = master or backup
        if master:
            what = ("only the master sync daemon runs (on %s, syncid %d): this director sends its "
                    "connections but receives none, so if its peer takes over and later hands back, "
                    "the connections made meanwhile are lost here") % (d.mcast_ifn, d.syncid)
        else:
            what = ("only the backup sync daemon runs (on %s, syncid %d): this director receives "
                    "connections but sends none, so a peer taking over from it finds none of the "
                    "connections made here") % (d.mcast_ifn, d.syncid)
        add("sync-daemons", PROBLEM, what + "; run both, or --ignore sync-daemons if a failover "
                                            "manager (keepalived) switches them")
    else:
        add("sync-daemons", OK, "no sync daemon runs: connections are not copied to another director, "
                                "and the sync_* settings change nothing")
    if master or backup:
        threshold = (s.get("sync_threshold") or "").split()
        if len(threshold) == 2:
            t, p = threshold
            refresh = s.get("sync_refresh_period")
            if refresh not in (None, "0"):
                when = (f"after {t} incoming packets, then again when its state changes or its timer "
                        f"moved by {refresh} s")
            elif p == "0":
                when = f"once, after {t} incoming packets, and at state changes"
            else:
                when = f"after {t} incoming packets, then every {p} packets"
            add("sync_threshold", NOTE, f"sync_threshold = {t} {p}: a connection is synced {when}; "
                                        f"one with fewer than {t} packets is never synced")
        v = s.get("sync_version")
        if v == "0":
            add("sync_version", NOTE, "sync_version = 0: the old sync protocol, only for peers running "
                                      "kernels before 2.6.39 (it cannot carry IPv6 or persistence data)")
        elif v is not None:
            add("sync_version", OK, f"sync_version = {v}: the current sync protocol")
        if s.get("sync_persist_mode") not in (None, "0"):
            add("sync_persist_mode", NOTE,
                f"sync_persist_mode = {s['sync_persist_mode']}: for persistent services only the "
                "persistence templates are synced, not each connection (backups may need sloppy_tcp)")

    # --- the table --------------------------------------------------------
    if f.read_error:
        return out
    nat = {m.AF_INET: [], m.AF_INET6: []}
    for svc, dests in table:
        if not dests:
            add("empty-service", PROBLEM, f"{_label(svc)} has no real servers: its clients get no answer")
        elif all(d.weight == 0 for d in dests):
            add("all-weights-zero", PROBLEM,
                f"{_label(svc)}: every real server has weight 0 (draining), so no new connection is "
                "scheduled: new clients get no answer")
        for d in dests:
            if d.fwd == m.FWD_MASQ:
                nat.setdefault(d.af, []).append(_label(svc))
                break
    for af, key, name in ((m.AF_INET, "ipv4", "net.ipv4.ip_forward"),
                          (m.AF_INET6, "ipv6", "net.ipv6.conf.all.forwarding")):
        services = list(dict.fromkeys(nat[af]))
        value = f.forwarding.get(key)
        if value is None or (not services and af == m.AF_INET6):
            continue
        if not services:
            add("ip_forward", OK, f"{name} = {value}: no NAT (masq) real server here needs it")
        elif value == "0":
            add("nat-forwarding", PROBLEM,
                f"{name} = 0 but {_some(services)} {'has' if len(services) == 1 else 'have'} NAT (masq) "
                f"real servers: their replies are not forwarded back to the clients; set {name}=1")
        else:
            add("nat-forwarding", OK, f"{name} = {value}: the replies of NAT (masq) real servers are "
                                      "forwarded back to the clients")
    if not table:
        add("table", OK, "no virtual services")
    else:
        n_dests = sum(len(d) for _, d in table)
        add("table", OK, f"{len(table)} virtual service{'s' if len(table) != 1 else ''}, "
                         f"{n_dests} real server{'s' if n_dests != 1 else ''}")
    return out


def apply_ignores(findings: list[Finding], ignore) -> list[Finding]:
    ignore = set(ignore)
    for x in findings:
        if x.id in ignore and x.status == PROBLEM:
            x.status = NOTE
            x.ignored = True
    return findings


def has_problems(findings: list[Finding]) -> bool:
    return any(x.status == PROBLEM for x in findings)


def report_doc(findings: list[Finding]) -> dict:
    problems = sum(1 for x in findings if x.status == PROBLEM)
    return {"ok": problems == 0, "problems": problems,
            "findings": [x.as_dict() for x in findings]}


def check_ids() -> tuple[str, ...]:
    """Every finding id, for --ignore's help and completion."""
    return ("ipvs", "schedulers", "persistence-engines", "conntrack", "expire_nodest_conn",
            "expire_quiescent_template", "conn_reuse_mode", "run_estimation", "sync-daemons",
            "sync_threshold", "sync_version", "sync_persist_mode", "empty-service",
            "all-weights-zero", "nat-forwarding", "ip_forward", "table")
