"""The `-h` text of the ipvsadm-compatible surface (ipvsctl's own words),
and ``ipvsctl help [SUBCOMMAND]``."""

from ipvsctl import __version__, vocab

# The schedulers every kernel has (twos came with Linux 6.2).
SCHEDULERS = "|".join(s for s in vocab.SCHEDULERS if s not in vocab.SCHEDULERS_SINCE)
PERSISTENCE_ENGINES = "|".join(vocab.ENGINES)


def usage(prog: str) -> str:
    p = prog
    return f"""Usage:
  {p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]
  {p} -D virtual-service
  {p} -C
  {p} -R
  {p} -S [-n]
  {p} -a|e virtual-service -r server-address [options]
  {p} -d virtual-service -r server-address
  {p} -L|l [virtual-service] [options]
  {p} -Z [virtual-service]
  {p} --set tcp tcpfin udp
  {p} --start-daemon {{master|backup}} [daemon-options]
  {p} --stop-daemon {{master|backup}}
  {p} -h

Commands (long or short spelling):
  --add-service     -A        add a virtual service
  --edit-service    -E        change a virtual service's settings
  --delete-service  -D        delete a virtual service and its real servers
  --clear           -C        delete every virtual service
  --restore         -R        read commands from standard input (checked before any is applied)
  --save            -S        print the table as commands for -R
  --add-server      -a        add a real server to a virtual service
  --edit-server     -e        change a real server's settings
  --delete-server   -d        remove a real server
  --list            -L|-l     print the table
  --zero            -Z        reset the counters of one or every service
  --set tcp tcpfin udp        set the connection timeouts (seconds, 0 keeps)
  --start-daemon              start the connection sync daemon
  --stop-daemon               stop the connection sync daemon
  --help            -h        print this text
  --version         -v        print the version

virtual-service:
  --tcp-service|-t  service-address   host[:port], IPv6 as [addr]:port
  --udp-service|-u  service-address   host[:port]
  --sctp-service    service-address   host[:port]
  --fwmark-service|-f fwmark          a firewall mark above zero

Options:
  --ipv6         -6                   the fwmark service is IPv6 (after -f)
  --scheduler    -s scheduler         one of {SCHEDULERS};
                                      wlc when not given
  --pe            engine              persistence engine: {PERSISTENCE_ENGINES} (none by default)
  --persistent   -p [timeout]         persistent service (360 s when no timeout)
  --netmask      -M netmask           persistence granularity (IPv4 mask or IPv6 prefix length)
  --real-server  -r server-address    host and optional port of a real server
  --gatewaying   -g                   direct routing (the default)
  --ipip         -i                   tunnelling
  --masquerading -m                   NAT
  --tun-type      type                ipip|gue|gre (ipip when not given)
  --tun-port      port                tunnel destination port (gue)
  --tun-nocsum                        tunnel without checksum
  --tun-csum                          tunnel with checksum
  --tun-remcsum                       tunnel with remote checksum
  --weight       -w weight            capacity of the real server (0 stops new connections)
  --u-threshold  -x uthreshold        upper connection threshold
  --l-threshold  -y lthreshold        lower connection threshold
  --connection   -c                   list the current connections
  --timeout                           list the timeouts (tcp tcpfin udp)
  --daemon                            list the sync daemons
  --stats                             list with counters
  --rate                              list with rates
  --exact        -X                   print numbers in full
  --thresholds                        list with thresholds
  --persistent-conn                   list with persistent connections
  --tun-info                          list with tunnel details
  --nosort                            keep the kernel's order
  --sort                              accepted for compatibility; sorting is the default
  --ops          -o                   one-packet scheduling (UDP and fwmark)
  --numeric      -n                   print addresses and ports as numbers
  --sched-flags  -b flags             scheduler flags, comma-separated
  --netns        name                 work on the table of a named network namespace
  --json                              with -L/-l: one JSON document instead of the text
Daemon Options:
  --syncid sid                        sync id, 0-255 (default=0)
  --sync-maxlen length                largest sync message (default: the kernel's, from the MTU)
  --mcast-interface interface         multicast interface for the sync traffic (default=eth0)
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     multicast TTL (default=1)

Subcommands ({p} SUBCOMMAND [options]; {p} help SUBCOMMAND for each one's options):
  list | ls                           the table for people; --stats, --rate, --json, filters
  watch                               live connection and byte rates, busiest first
  restore [--json] [FILE]             restore checked first (names too); --flush: all or
                                      nothing; --dry-run: check only
  diff [FILE]                         what differs between the table and a rule file
  apply [FILE]                        make the table match FILE in place; rolled back
                                      on a refusal
  drain -t|-u|-f SERVICE -r SERVER    weight 0, wait for its connections to end, remove
  metrics [--listen ADDR:PORT]        counters, rates and weights for Prometheus
  conns [--summary|--top N]           the connections, filtered, counted or ranked
  doctor                              check IPVS, the sysctls that matter and the table
  completion bash|zsh|fish            the shell completion script
  help [SUBCOMMAND]                   this text, or a subcommand's
"""


def version_text() -> str:
    return f"ipvsctl {__version__} (ipvsadm 1.31 compatible, generic netlink)\n"


def usage_text(prog: str) -> str:
    return version_text() + usage(prog)


def answer(topic: str | None, prog: str) -> int:
    """``ipvsctl help``: -h's text; ``ipvsctl help SUBCOMMAND``: that
    subcommand's own help (as SUBCOMMAND --help)."""
    import sys

    from ipvsctl.commands import SUBCOMMANDS

    if topic in SUBCOMMANDS:
        from ipvsctl.commands.group import run_app

        return run_app([topic, "--help"], prog)
    if topic is not None and topic != "help":
        # `ipvsctl help lsit` printed the whole -h text with status 0, as if
        # the word had been understood.
        import difflib

        from ipvsctl.vocab import EXIT_INVALID

        close = difflib.get_close_matches(topic, (*SUBCOMMANDS, "help"), n=1, cutoff=0.6)
        hint = f"did you mean `{prog} help {close[0]}'? " if close else ""
        sys.stderr.write(f"{prog}: help: `{topic}' is no subcommand; {hint}"
                         f"`{prog} help' lists them\n")
        return EXIT_INVALID
    sys.stdout.write(usage_text(prog))
    return 0
