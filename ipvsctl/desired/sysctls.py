"""The three sysctls that change what draining a real server means.

Read from ``/proc/sys/net/ipv4/vs/`` of the table's own network namespace
(the file shows the namespace of whoever opens it).  Each value comes with
one line on its consequence, for the plan and the drain output; the
sentences follow Documentation/networking/ipvs-sysctl.rst and what the tests
saw in the kernel.
"""

from __future__ import annotations

NAMES = ("expire_nodest_conn", "expire_quiescent_template", "conn_reuse_mode")
_DIR = "/proc/sys/net/ipv4/vs/"


def read(netns: str | None = None) -> dict[str, int | None]:
    """{name: value}; None for a sysctl this kernel does not have."""

    def read_all():
        values = {}
        for name in NAMES:
            try:
                with open(_DIR + name) as f:
                    values[name] = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                values[name] = None
        return values

    if netns is None:
        return read_all()
    from ipvsctl.netlink.netns import in_netns

    return in_netns(netns, read_all)


def consequence(name: str, value: int | None) -> str:
    if value is None:
        return "not present in this kernel"
    if name == "expire_nodest_conn":
        if value:
            return ("a removed real server's connections are ended at their next packet: "
                    "clients still using it see the connection closed")
        return ("a removed real server's connections stay in the table and their packets are "
                "dropped until they time out: clients still using it hang")
    if name == "expire_quiescent_template":
        if value:
            return ("persistence templates of a weight-0 server are expired when next used: "
                    "persistent clients move to other servers")
        return ("persistent clients keep coming back to a weight-0 server through their "
                "templates: draining a persistent service lasts as long as they do")
    if name == "conn_reuse_mode":
        if value:
            return ("a new connection from a reused client port is scheduled afresh only when the "
                    "old entry is closing (TIME_WAIT; FIN_WAIT too with 2), else it follows the old "
                    "one, even to a weight-0 server")
        return ("a new connection from a reused client port goes to the server of the old one, "
                "even at weight 0: a draining server can still receive new connections")
    return ""


def lines(values: dict[str, int | None]) -> list[str]:
    """'net.ipv4.vs.NAME = V: consequence', one per sysctl."""
    return [f"net.ipv4.vs.{name} = {'?' if values.get(name) is None else values[name]}: "
            f"{consequence(name, values.get(name))}" for name in NAMES]


def doc(values: dict[str, int | None]) -> dict:
    return {name: {"value": values.get(name), "consequence": consequence(name, values.get(name))}
            for name in NAMES}
