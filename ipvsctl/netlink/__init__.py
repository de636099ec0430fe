"""Generic-netlink access to IPVS: constants, a pure codec, the socket, and the backend."""
