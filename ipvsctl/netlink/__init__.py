"""Generic-netlink access to IPVS: framing, a pure codec (encode, decode, learned layouts, columns), the socket, the backend."""
