"""Numbers of the netlink, generic-netlink and IPVS interfaces.

Strategy: every protocol number the codec and the socket use is named here,
once, with the value and the name it has in the kernel's uapi headers
(linux/netlink.h, linux/genetlink.h, linux/ip_vs.h, asm-generic/socket.h), so
that no other module carries a magic number.  Pure data: importing this module
costs nothing.
"""

# --- linux/netlink.h --------------------------------------------------------
NETLINK_GENERIC = 16

NLMSG_NOOP = 0x1
NLMSG_ERROR = 0x2
NLMSG_DONE = 0x3
NLMSG_OVERRUN = 0x4
NLMSG_MIN_TYPE = 0x10  # first type number that is not a control message

NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_ECHO = 0x08
NLM_F_DUMP_INTR = 0x10  # the dump was interrupted by a change: inconsistent
NLM_F_DUMP_FILTERED = 0x20
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
# Flags of an NLMSG_ERROR message.
NLM_F_CAPPED = 0x100  # the echoed request was cut to its header
NLM_F_ACK_TLVS = 0x200  # extended-ack attributes follow

NLMSG_ALIGNTO = 4
NLMSG_HDRLEN = 16  # struct nlmsghdr: u32 len, u16 type, u16 flags, u32 seq, u32 pid
NLMSGERR_LEN = 4 + NLMSG_HDRLEN  # struct nlmsgerr: int error + the request's header

SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_NO_ENOBUFS = 5
NETLINK_CAP_ACK = 10  # error reports echo only the request's header
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12

# Attributes (struct nlattr: u16 len, u16 type).
NLA_HDRLEN = 4
NLA_ALIGNTO = 4
NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xFFFF

# --- asm-generic/socket.h (not all exposed by Python's socket module) -------
SOL_SOCKET = 1
SO_SNDBUF = 7
SO_RCVBUF = 8
SO_SNDBUFFORCE = 32  # needs CAP_NET_ADMIN; ignores net.core.wmem_max
SO_RCVBUFFORCE = 33  # needs CAP_NET_ADMIN; ignores net.core.rmem_max

# --- linux/sched.h ----------------------------------------------------------
CLONE_NEWNET = 0x40000000

# --- linux/genetlink.h ------------------------------------------------------
GENL_HDRLEN = 4  # struct genlmsghdr: u8 cmd, u8 version, u16 reserved
GENL_ID_CTRL = 0x10  # NLMSG_MIN_TYPE: the controller family

CTRL_CMD_UNSPEC = 0
CTRL_CMD_NEWFAMILY = 1
CTRL_CMD_DELFAMILY = 2
CTRL_CMD_GETFAMILY = 3
CTRL_VERSION = 2  # version the controller itself speaks (any value is accepted)

CTRL_ATTR_UNSPEC = 0
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
CTRL_ATTR_VERSION = 3
CTRL_ATTR_HDRSIZE = 4
CTRL_ATTR_MAXATTR = 5

# --- linux/ip_vs.h ----------------------------------------------------------
IPVS_GENL_NAME = "IPVS"
IPVS_GENL_VERSION = 0x1
# The connection table: IPVS has no netlink dump of it, only this file (per
# network namespace: /proc/thread-self/net/ip_vs_conn from inside one).
IP_VS_CONN = "ip_vs_conn"
IP_VS_CONN_FILE = "/proc/net/" + IP_VS_CONN

# The values IPVS's attributes carry (service flags, forwarding methods,
# tunnel types, daemon states, name lengths) are ipvsctl.vocab's.

# Generic netlink commands.
IPVS_CMD_UNSPEC = 0
IPVS_CMD_NEW_SERVICE = 1
IPVS_CMD_SET_SERVICE = 2
IPVS_CMD_DEL_SERVICE = 3
IPVS_CMD_GET_SERVICE = 4
IPVS_CMD_NEW_DEST = 5
IPVS_CMD_SET_DEST = 6
IPVS_CMD_DEL_DEST = 7
IPVS_CMD_GET_DEST = 8
IPVS_CMD_NEW_DAEMON = 9
IPVS_CMD_DEL_DAEMON = 10
IPVS_CMD_GET_DAEMON = 11
IPVS_CMD_SET_CONFIG = 12
IPVS_CMD_GET_CONFIG = 13
IPVS_CMD_SET_INFO = 14
IPVS_CMD_GET_INFO = 15
IPVS_CMD_ZERO = 16
IPVS_CMD_FLUSH = 17

# First-level attributes.
IPVS_CMD_ATTR_UNSPEC = 0
IPVS_CMD_ATTR_SERVICE = 1
IPVS_CMD_ATTR_DEST = 2
IPVS_CMD_ATTR_DAEMON = 3
IPVS_CMD_ATTR_TIMEOUT_TCP = 4
IPVS_CMD_ATTR_TIMEOUT_TCP_FIN = 5
IPVS_CMD_ATTR_TIMEOUT_UDP = 6

# Attributes nested in IPVS_CMD_ATTR_SERVICE.
IPVS_SVC_ATTR_UNSPEC = 0
IPVS_SVC_ATTR_AF = 1
IPVS_SVC_ATTR_PROTOCOL = 2
IPVS_SVC_ATTR_ADDR = 3
IPVS_SVC_ATTR_PORT = 4
IPVS_SVC_ATTR_FWMARK = 5
IPVS_SVC_ATTR_SCHED_NAME = 6
IPVS_SVC_ATTR_FLAGS = 7
IPVS_SVC_ATTR_TIMEOUT = 8
IPVS_SVC_ATTR_NETMASK = 9
IPVS_SVC_ATTR_STATS = 10
IPVS_SVC_ATTR_PE_NAME = 11
IPVS_SVC_ATTR_STATS64 = 12

# Attributes nested in IPVS_CMD_ATTR_DEST.
IPVS_DEST_ATTR_UNSPEC = 0
IPVS_DEST_ATTR_ADDR = 1
IPVS_DEST_ATTR_PORT = 2
IPVS_DEST_ATTR_FWD_METHOD = 3
IPVS_DEST_ATTR_WEIGHT = 4
IPVS_DEST_ATTR_U_THRESH = 5
IPVS_DEST_ATTR_L_THRESH = 6
IPVS_DEST_ATTR_ACTIVE_CONNS = 7
IPVS_DEST_ATTR_INACT_CONNS = 8
IPVS_DEST_ATTR_PERSIST_CONNS = 9
IPVS_DEST_ATTR_STATS = 10
IPVS_DEST_ATTR_ADDR_FAMILY = 11
IPVS_DEST_ATTR_STATS64 = 12
IPVS_DEST_ATTR_TUN_TYPE = 13
IPVS_DEST_ATTR_TUN_PORT = 14
IPVS_DEST_ATTR_TUN_FLAGS = 15

# Attributes nested in IPVS_CMD_ATTR_DAEMON.
IPVS_DAEMON_ATTR_UNSPEC = 0
IPVS_DAEMON_ATTR_STATE = 1
IPVS_DAEMON_ATTR_MCAST_IFN = 2
IPVS_DAEMON_ATTR_SYNC_ID = 3
IPVS_DAEMON_ATTR_SYNC_MAXLEN = 4
IPVS_DAEMON_ATTR_MCAST_GROUP = 5
IPVS_DAEMON_ATTR_MCAST_GROUP6 = 6
IPVS_DAEMON_ATTR_MCAST_PORT = 7
IPVS_DAEMON_ATTR_MCAST_TTL = 8

# Attributes nested in the *_ATTR_STATS and *_ATTR_STATS64 containers.
IPVS_STATS_ATTR_UNSPEC = 0
IPVS_STATS_ATTR_CONNS = 1
IPVS_STATS_ATTR_INPKTS = 2
IPVS_STATS_ATTR_OUTPKTS = 3
IPVS_STATS_ATTR_INBYTES = 4
IPVS_STATS_ATTR_OUTBYTES = 5
IPVS_STATS_ATTR_CPS = 6
IPVS_STATS_ATTR_INPPS = 7
IPVS_STATS_ATTR_OUTPPS = 8
IPVS_STATS_ATTR_INBPS = 9
IPVS_STATS_ATTR_OUTBPS = 10
IPVS_STATS_ATTR_PAD = 11

# Attributes of the IPVS_CMD_SET_INFO reply (first level).
IPVS_INFO_ATTR_UNSPEC = 0
IPVS_INFO_ATTR_VERSION = 1
IPVS_INFO_ATTR_CONN_TAB_SIZE = 2
