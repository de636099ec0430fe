"""The native model: ipvsctl and ipvsadm estimated natively, on a host without IPVS.

Inside User-Mode Linux a system call costs 20-30x its native price, which
flatters the tool that makes few of them.  This package measures what can
be measured natively on the host and takes from the kernel tier only what
does not depend on the machine's speed:

* uml_inputs.py  (kernel tier) system calls per unit (strace -c), ipvsadm's
                 user-space instructions per unit (callgrind), and the
                 kernel's answers to ipvsctl's listings, recorded;
* nlpattern.c    (host) ipvsadm's system-call pattern timed natively, with
                 generic-netlink requests the host kernel answers;
* replay.py      the recorded answers replayed through ipvsctl's own
                 Transport (an injected socket), so decoding and rendering
                 run natively;
* host.py        (host) the native rows of benchmarks/run: start-up, restore
                 per line, listing per real server, and the model's totals;
* timeprofile.py where ipvsctl's native per-line and per-server time goes.

docs/performance.md, "The native model", has the numbers and assumptions.
"""
