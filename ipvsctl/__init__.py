"""ipvsctl: drive Linux IPVS over generic netlink, ipvsadm-compatible."""

__version__ = "0.1.0"
