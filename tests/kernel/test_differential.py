"""ipvsadm against ipvsctl, line by line, in a real kernel (see differential.py).

Each scenario is a list of command lines applied to an empty table through
both tools, then every listing mode is compared, and the two kernel tables are
compared as the real ipvsadm reads them back.
"""

from __future__ import annotations

import pytest

from differential import compare_lines, compare_state, compare_views, ipvsadm, ipvsctl

LIST_VIEWS = [
    "-Ln", "-L -n", "-l --numeric", "-Ln --stats", "-Ln --rate", "-Ln --thresholds",
    "-Ln --persistent-conn", "-Ln --tun-info", "-Ln --exact --stats", "-Ln --nosort",
    "-Ln --sort", "-Sn", "-Ln --timeout", "-Ln --daemon", "-L --timeout",
]

SCENARIOS = {
    "tcp-services": [
        "-A -t 10.1.0.1:80",
        "-A -t 10.1.0.2:80 -s rr",
        "-A -t 10.1.0.3:443 -s wrr -p",
        "-A -t 10.1.0.4:8080 -s lc -p 600 -M 255.255.255.0",
        "-A -t 10.1.0.5:22 -s sh -b sh-fallback,sh-port",
        "-A -t 10.1.0.6:23 -s mh -b mh-fallback",
        "-A -t 10.1.0.7:0 -p 100",
        "-A -t 10.1.0.8:25 -s sed",
        "-A -t 10.1.0.9:26 -s nq",
        "-A -t 10.1.0.10:27 -s lblc",
        "-A -t 10.1.0.11:28 -s lblcr",
        "-A -t 10.1.0.12:29 -s dh",
        "-A -t 10.1.0.13:30 -s fo",
        "-A -t 10.1.0.14:31 -s ovf",
        "-A -t 10.1.0.15:32 -s wlc -b flag-1,flag-3",
    ],
    "udp-sctp-ops-pe": [
        "-A -u 10.2.0.1:53 -s rr -o",
        "-A -u 10.2.0.2:5060 -p 30 --pe sip",
        "--add-service --udp-service 10.2.0.3:123 --scheduler wrr --ops",
        "-A --sctp-service 10.2.0.4:3868 -s rr",
        "-A --sctp-service=10.2.0.5:2905",
        "-A -u 10.2.0.6:0 -p",
        "-E -u 10.2.0.1:53 -s wlc",
    ],
    "ipv6-and-fwmark": [
        "-A -t [2001:db8::1]:80 -s rr",
        "-A -u [2001:db8::2]:53 -p 120 -M 64",
        "-A -t [2001:db8::3]:443 -p -M 128",
        "-A -f 1 -s rr",
        "-A -f 2 -6 -s wrr -p 300 -M 48",
        "-A -f 3 -p -M 255.255.0.0",
        "-A --fwmark-service 4 --ipv6",
        "-a -f 1 -r 10.3.0.1 -m -w 2",
        "-a -f 1 -r 10.3.0.2:8080 -m",
        "-a -f 2 -6 -r [2001:db8::10] -g",
        "-a -f 2 -6 -r [2001:db8::11]:99 -m -w 0",
        "-a -t [2001:db8::1]:80 -r [2001:db8::20]:8080 -m -w 5 -x 100 -y 50",
        "-a -t [2001:db8::1]:80 -r [2001:db8::21] -g",
        "-a -t [2001:db8::1]:80 -r 10.3.0.9 -i",
    ],
    "real-servers": [
        "-A -t 10.4.0.1:80 -s rr",
        "-a -t 10.4.0.1:80 -r 192.168.10.1:8080 -m -w 3",
        "-a -t 10.4.0.1:80 -r 192.168.10.2 -m",
        "-a -t 10.4.0.1:80 -r 192.168.10.3:9999 -g",
        "-a -t 10.4.0.1:80 -r 192.168.10.4 -i -w 0",
        "-a -t 10.4.0.1:80 -r 10.9.0.1 -x 1000 -y 100",
        "-a -t 10.4.0.1:80 -r 10.9.0.2 -m --u-threshold 5 --l-threshold 2",
        "--add-server --tcp-service 10.4.0.1:80 --real-server 10.9.0.3:81 --masquerading --weight 65535",
        "-e -t 10.4.0.1:80 -r 192.168.10.1:8080 -m -w 7",
        "-e -t 10.4.0.1:80 -r 192.168.10.2 -g -w 4",
        "-d -t 10.4.0.1:80 -r 192.168.10.3",
        "-d -t 10.4.0.1:80 -r 10.9.0.1:80",
        "-A -u 10.4.0.2:53",
        "-a -u 10.4.0.2:53 -r 10.9.1.1 -m",
        "-a -u 10.4.0.2:53 -r 10.9.1.2:5353 -m -w 2",
    ],
    "tunnels": [
        "-A -t 10.5.0.1:80 -s rr",
        "-a -t 10.5.0.1:80 -r 10.9.2.1 -i",
        "-a -t 10.5.0.1:80 -r 10.9.2.2 -i --tun-type ipip",
        "-a -t 10.5.0.1:80 -r 10.9.2.3 -i --tun-type gue --tun-port 6080",
        "-a -t 10.5.0.1:80 -r 10.9.2.4 -i --tun-type gue --tun-port 6081 --tun-csum",
        "-a -t 10.5.0.1:80 -r 10.9.2.5 -i --tun-type gue --tun-port 6082 --tun-remcsum",
        "-a -t 10.5.0.1:80 -r 10.9.2.6 -i --tun-type gue --tun-port 6083 --tun-nocsum",
        "-a -t 10.5.0.1:80 -r 10.9.2.7 -i --tun-type gre",
        "-a -t 10.5.0.1:80 -r 10.9.2.8 -i --tun-type gre --tun-csum",
        "-a -t 10.5.0.1:80 -r [2001:db8::99] -i --tun-type gre --tun-nocsum",
        "-e -t 10.5.0.1:80 -r 10.9.2.1 -i --tun-type gue --tun-port 7000 --tun-csum",
    ],
    "delete-clear-zero": [
        "-A -t 10.6.0.1:80", "-A -t 10.6.0.2:80", "-A -u 10.6.0.3:53",
        "-a -t 10.6.0.1:80 -r 10.9.3.1 -m",
        "-D -t 10.6.0.2:80",
        "-Z", "-Z -t 10.6.0.1:80", "-Z -u 10.6.0.3:53", "--zero",
        "-D -u 10.6.0.3:53",
        "-C",
        "-A -t 10.6.0.9:80",
        "--clear",
    ],
    "timeouts": [
        "--set 900 120 300",
        "--set 0 0 0",
        "--set 3600 0 60",
        "-L --timeout",
    ],
    "kernel-errors": [
        "-A -t 10.7.0.1:80 -s rr",
        "-A -t 10.7.0.1:80 -s rr",
        "-A -t 10.7.0.2:80 -s nosuch",
        "-A -t 10.7.0.3:80 -p --pe nosuch",
        "-E -t 10.7.0.9:80 -s rr",
        "-E -t 10.7.0.1:80 -s nosuch",
        "-D -t 10.7.0.9:80",
        "-Z -t 10.7.0.9:80",
        "-a -t 10.7.0.9:80 -r 10.9.4.1",
        "-a -t 10.7.0.1:80 -r 10.9.4.1 -m",
        "-a -t 10.7.0.1:80 -r 10.9.4.1 -m",
        "-e -t 10.7.0.9:80 -r 10.9.4.1",
        "-e -t 10.7.0.1:80 -r 10.9.4.2 -m",
        "-d -t 10.7.0.9:80 -r 10.9.4.1",
        "-d -t 10.7.0.1:80 -r 10.9.4.2",
        "-a -t 10.7.0.1:80 -r 10.9.4.5 -m -x 10 -y 20",
        "-a -t 10.7.0.1:80 -r 224.0.0.1 -m",
        "-L -t 10.7.0.9:80",
        "-L -n -t 10.7.0.1:80",
        "-Ln -t 10.7.0.1:80 --stats",
        "-Ln -f 77",
        "--stop-daemon master",
    ],
    "parse-errors": [
        "", "foo", "-n -L", "--foo", "-A --foo", "-V", "-A -t", "-A -t 1.2.3.4:80 foo",
        "-A -t 1.2.3.4:80 -w 3", "-A -t 1.2.3.4:80 -A", "-A -t 1.2.3.4:80 -t 1.2.3.5:80",
        "-A -t 1.2.3.4:80 -p 10 -p 20", "-A -t 1.2.3.4 -s rr", "-A -t 1.2.3.4:0 -s rr",
        "-A -t 1.2.3.4:99999", "-A -t ::1:81", "-A -6 -f 2", "-A -f 0", "-A -f -1",
        "-A -f 4294967296", "-A -f 0x10", "-A -t 1.2.3.4:80 -pfoo", "-A -t 1.2.3.4:80 -p 0",
        "-A -t 1.2.3.4:80 -p 2678401", "-A -t 1.2.3.4:80 -M 255.255.255.0",
        "-A -t 1.2.3.4:80 -p -M foo.invalid.", "-A -t [2001:db8::1]:80 -p -M 129",
        "-A -t [2001:db8::1]:80 -p -M 0", "-A -t [2001:db8::1]:80 -p -M x",
        "-A -t 1.2.3.4:80 -s rr -b sh-port", "-A -t 1.2.3.4:80 -b bogus",
        "-A -t 1.2.3.4:80 -o", "-A -t 1.2.3.4:80 -r 1.1.1.1",
        "-a -t 1.2.3.4:80", "-a -r 1.1.1.1", "-a -t 1.2.3.4:80 -r 1.1.1.1 -w 65536",
        "-a -t 1.2.3.4:80 -r 1.1.1.1 -w -1", "-a -t 1.2.3.4:80 -r 1.1.1.1 -w x",
        "-a -t 1.2.3.4:80 -r 1.1.1.1 -x 2147483648", "-a -t 1.2.3.4:80 -r 1.1.1.1 -y -5",
        "-a -t 1.2.3.4:80 -r 1.1.1.1:99999", "-a -t 1.2.3.4:80 -r nosuchhost.invalid.",
        "-a -t 1.2.3.4:80 -r [2001:db8::1]:80 -m",
        "-a -t 1.2.3.4:80 -r 1.1.1.1 -m --tun-type gre",
        "-a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type foo",
        "-a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type gue",
        "-a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-port 80",
        "-a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type gue --tun-port 0",
        "-a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type gue --tun-port 80 --tun-csum --tun-remcsum",
        "-a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type gre --tun-remcsum",
        "-a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-csum",
        "-a -t 1.2.3.4:80 -r 1.1.1.1 -g -m", "-d -t 1.2.3.4:80 -r 1.1.1.1 -w 2",
        "-D", "-D -t 1.2.3.4:80 -s rr", "-C -t 1.2.3.4:80", "-Z -r 1.1.1.1",
        "-L -c --stats", "-L --timeout --daemon", "-L --daemon --persistent-conn",
        "-L -c -t 1.2.3.4:80", "-L -s rr", "-S -c", "-S --stats", "-R -n",
        "--set 1 2", "--set 1 2 x", "--set 1 2 3 4", "--set -1 2 3",
        "--start-daemon foo", "--stop-daemon bar", "--start-daemon master --syncid 256",
        "--start-daemon master --mcast-group 10.0.0.1", "--start-daemon master --mcast-group ff02::zz",
        "--start-daemon master --mcast-port 0", "--start-daemon master --mcast-ttl 256",
        "--start-daemon master --sync-maxlen 65508", "--stop-daemon master --mcast-interface lo",
        "-Ln --weight 3", "-Lnq", "-Lx", "-A -t1.2.3.4:80 -s", "--list=foo", "-L --numeric=yes",
        "-t 1.2.3.4:80 -A", "-A -- -t 1.2.3.4:80", "-A -t 1.2.3.4:http -s rr -M 1.2.3",
    ],
    # Hosts the C library's gethostbyname finds nothing for and Python's
    # answers itself: "" (INADDR_ANY) and "<broadcast>".
    "empty-and-broadcast-hosts": [
        "-A -t :80", "-A -t :80 -p", "-A -u []:53", "-A -t []:80 -p", "-A --sctp-service :80",
        "-A -t '<broadcast>:80'", "-A -t '<broadcast>'", "-A -t 10.8.7.1:80",
        "-a -t 10.8.7.1:80 -r :80 -m", "-a -t 10.8.7.1:80 -r [] -m", "-a -t 10.8.7.1:80 -r '<broadcast>'",
        "-e -t 10.8.7.1:80 -r :80 -w 2", "-d -t 10.8.7.1:80 -r :80", "-L -n -t :80", "-Z -t []:80",
        "-E -t :80 -s rr", "-D -t :80", "-A -t 10.8.7.2:80 -p -M ''", "-A -t 10.8.7.3:80 -M ''",
        "-A -f 9 -p -M '<broadcast>'", "-E -t 10.8.7.1:80 -p -M ''",
    ],
    # Words that are not ASCII: bytes that are not UTF-8 (Python holds
    # them as surrogates, ipvsadm gets them back as bytes), fullwidth digits
    # (which Python's IDNA codec would read as ASCII ones).
    "words-not-ascii": [
        "-A -t \udcff:80", "-A -u '[\udcff::1]:53'", "-A -t 1.2.3.4\udcff:80", "-A -t １.2.3.4:80",
        "-A -t 10.8.10.1:８0", "-A -t 10.8.10.1:80", "-a -t 10.8.10.1:80 -r １.2.3.4 -m",
        "-a -t 10.8.10.1:80 -r 10.8.11.1\udcff -m", "-A -t 10.8.10.2:80 -p -M ２55.255.255.0",
        "-A -t 10.8.10.3:80 -p -M 255.255.255.0\udcff", "--start-daemon master --mcast-group \udcff",
        "--start-daemon master --mcast-group ff02::\udcff", "--start-daemon master --mcast-group ２24.0.0.1",
        "-L -n -t １.2.3.4:80",
    ],
    # Names copied into fixed buffers are cut in bytes, not characters:
    # eight é are 16 bytes, so 7 é and half of the 8th.
    "names-cut-in-bytes": [
        "-A -t 10.8.10.4:80 -s '[２001:db8::1]:80'", "-A -t 10.8.10.5:80 -s éééééééé",
        "-A -t 10.8.10.6:80 -p --pe ééééééééé", "-A -u 10.8.10.7:5060 -p --pe sipéééééééé",
        "--start-daemon master --mcast-interface éééééééé",
    ],
    # popt 1.19's rules (popt.scan): "=" after a short option that
    # takes a value, clusters, "--opt=value", empty values, "!#:+".
    "popt-equals": [
        "-A -t=10.8.0.1:80 -s=rr", "-A -t==10.8.0.2:80", "-A -t=", "-A -t=10.8.0.3:80 -p=",
        "-A -t=10.8.0.4:80 -p=30 -M=255.255.255.0", "-A -u=10.8.0.5:53 -s=wrr -o -b=flag-1",
        "-A -f=7 -s=sh -b=sh-port", "-A -f=8 -6 -p=60 -M=64", "-A --tcp-service=",
        "-A --tcp-service=10.8.0.6:80 --scheduler=", "-A -t 10.8.0.7:80 -s=",
        "-A -t 10.8.0.8:80 -p30 -M=255.255.0.0", "-A -Mt=10.8.0.9:80",
        "-a -t=10.8.0.1:80 -r=10.8.1.1:8080 -m -w=3 -x=9 -y=2",
        "-a -t 10.8.0.1:80 -r=10.8.1.2 -w=", "-a -t 10.8.0.1:80 -r 10.8.1.3 -m=",
        "-a -t 10.8.0.1:80 -r 10.8.1.4 -mw=4", "-a -t 10.8.0.1:80 -r 10.8.1.5 -mw4 -x=",
        "-a -t 10.8.0.1:80 -r 10.8.1.6 -gw==4", "-a -f=7 -r=10.8.1.7 -i --tun-type=gre",
        "-a -t 10.8.0.1:80 -r 10.8.1.8 -i --tun-type=gue --tun-port=6080 --tun-csum=",
        "-e -t=10.8.0.1:80 -r=10.8.1.1:8080 -w=5 -m",
        "-Ln= ", "-L=n", "--list=", "--list -n=", "-Lt=10.8.0.1:80", "-Ln -t=10.8.0.1:80",
        "-Lnt10.8.0.1:80", "-Ln -t", "-Ln --tcp-service", "-A -6=", "-A=x", "--add-service=x",
        "-Z -t=10.8.0.4:80", "-D -t=10.8.0.99:80", "--set=1 2 3", "--set 900= 120 300",
        "--start-daemon=nosuch", "--stop-daemon=backup", "-A -t 10.8.0.20:80 -s =rr",
        "-A -t 10.8.0.21:80 -p -30", "-A -t 10.8.0.22:80 -p=-30", "-A -t 10.8.0.23:80 -p ''",
        "-A -t '' ", "-A '' -t 10.8.0.24:80", "-A - -t 10.8.0.25:80", "-A -t 10.8.0.26:80 -- -s rr",
    ],
    "popt-bundled-commands": [
        "-AL", "-SZ", "-LnC", "-Lc -A", "-A -t 10.8.2.1:80 -L", "-A -t 10.8.2.1:80 -AL",
        "-A -t 10.8.2.1:80 --stop-daemon master", "-A -t 10.8.2.1:80 --stop-daemon=master",
        "-L --start-daemon backup", "-Ln -S", "-ZL", "-Lnh", "-Lv", "-CL", "-RL",
        "-A -t 10.8.2.1:80 -sL", "-A -t 10.8.2.1:80 --set", "-a -t 10.8.2.1:80 -r 10.8.2.2 -me",
    ],
    "popt-next-arg": [
        "-A -t !#:+ 10.8.3.1:80", "-A -t 10.8.3.2:80 -s '!#:+' -p 30",
        "-A -t 10.8.3.3:80 -s 'x!#:+y' foo", "-A -t 10.8.3.4:80 -s '!#:+'",
        "-A -t '!#:+' -- 10.8.3.5:80", "-A -t '!#:+:!#:+' 10.8.3.6 80",
        "-A -t 10.8.3.7:80 -s=!#:+ rr", "-A --tcp-service=!#:+ 10.8.3.8:80 -s rr",
        "-A -t!#:+ -s rr 10.8.3.9:80", "-a -t 10.8.3.1:80 -r !#:+ -m -w !#:+ 10.8.3.10:8080 7",
        "-L -n -t !#:+ 10.8.3.1:80",
    ],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(netns_pair, name):
    ref, ours = netns_pair
    problems = compare_lines(ref, ours, SCENARIOS[name])
    problems += compare_state(ref, ours)
    problems += compare_views(ours, LIST_VIEWS)
    assert not problems, "\n\n".join(problems)


def test_names_resolved_without_n(netns_pair):
    """Without -n addresses and ports print as names, like ipvsadm's."""
    ref, ours = netns_pair
    lines = [
        "-A -t 127.0.0.1:80 -s rr", "-A -t localhost:https", "-A -u 127.0.0.1:domain",
        "-a -t 127.0.0.1:http -r 127.0.0.1:8080 -m", "-a -t 127.0.0.1:80 -r 127.0.0.2:ssh -m",
        "-A -t [::1]:80", "-a -t [::1]:80 -r [::1]:443 -m", "-A -f 7",
        "-A --sctp-service 127.0.0.1:80",
    ]
    problems = compare_lines(ref, ours, lines)
    problems += compare_views(ours, ["-L", "-l", "", "-S", "-L --stats", "-L -t localhost:http",
                                          "-L --tun-info", "-L --thresholds"])
    assert not problems, "\n\n".join(problems)



def test_without_root_rights(netns):
    """As an unprivileged user both tools fail at start, the same way, for
    reads and changes alike (IPVS's netlink commands all need CAP_NET_ADMIN)."""
    import sys

    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    for line in (["-Ln"], ["-A", "-t", "10.40.0.1:80"], ["-L", "--timeout"], ["-R"]):
        want = netns.run([*nobody, "ipvsadm", *line], input="")
        got = netns.run([*nobody, sys.executable, "-m", "ipvsctl", *line], input="")
        # On failure ipvsadm runs `modprobe ip_vs`; in the UML guest modprobe
        # cannot see the module tree at /lib/modules and says so.  On a normal
        # host (module loaded) it prints nothing; that line is not ipvsadm's.
        want_err = "".join(x for x in want.stderr.splitlines(True) if not x.startswith("modprobe: "))
        assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want_err), line


def test_posixly_correct_makes_the_first_leftover_end_the_options(netns_pair, monkeypatch):
    """popt reads POSIXLY_CORRECT (and POSIX_ME_HARDER): after the first word
    that is not an option, every word is a leftover."""
    ref, ours = netns_pair
    lines = ["-A -t 10.8.4.1:80 -s rr", "-A foo -t 10.8.4.2:80", "-L -n extra -t 10.8.4.1:80",
             "foo -L", "-A -t 10.8.4.3:80 -- -s rr", "--set 900 120 300", "--set 900 -5 300",
             "-Ln - --stats", "-A -t !#:+ 10.8.4.4:80 x"]
    for var in ("POSIXLY_CORRECT", "POSIX_ME_HARDER"):
        monkeypatch.setenv(var, "1")
        problems = compare_lines(ref, ours, lines)
        problems += compare_state(ref, ours)
        assert not problems, "\n\n".join(problems)
        monkeypatch.delenv(var)
        compare_lines(ref, ours, ["-C"])


def test_popt_forms_inside_a_restore_stream(netns_pair):
    """A -R stream is parsed line by line with the same popt rules."""
    ref, ours = netns_pair
    stream = ("-A -t=10.8.5.1:80 -s=rr -p=60\n-a -t=10.8.5.1:80 -r=10.8.6.1:8080 -m -w=3 -x=9 -y=2\n"
              "-a -t 10.8.5.1:80 -r 10.8.6.2 -mw4\n--add-service --udp-service=10.8.5.2:53 -o\n"
              "-A -f=9 -6 -M=64 -p\n-A -t 10.8.5.3:80 -p 30 -s !#:+ rr\n-Ln -t=10.8.5.1:80\n")
    want = ipvsadm(ref, ["-R"], input=stream)
    got = ipvsctl(ours, ["-R"], input=stream)
    assert want.status == 0 and want.err == ""
    assert got == want
    assert not compare_state(ref, ours)
