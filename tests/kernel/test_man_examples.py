"""The examples of the ipvsadm(8) man page, run verbatim as shell scripts.

Each example runs once as written (real ipvsadm) and once with the command
word `ipvsadm` replaced by the ipvsctl console script; both kernel tables
must end up the same.  These spawn the real CLI, so they also cover the
installed entry point and stdin handling of -R.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from differential import compare_state

EXAMPLES = {
    "1-simple": """
ipvsadm -A -t 207.175.44.110:80 -s rr
ipvsadm -a -t 207.175.44.110:80 -r 192.168.10.1:80 -m
ipvsadm -a -t 207.175.44.110:80 -r 192.168.10.2:80 -m
ipvsadm -a -t 207.175.44.110:80 -r 192.168.10.3:80 -m
ipvsadm -a -t 207.175.44.110:80 -r 192.168.10.4:80 -m
ipvsadm -a -t 207.175.44.110:80 -r 192.168.10.5:80 -m
""",
    "1-restore": """
echo "
-A -t 207.175.44.110:80 -s rr
-a -t 207.175.44.110:80 -r 192.168.10.1:80 -m
-a -t 207.175.44.110:80 -r 192.168.10.2:80 -m
-a -t 207.175.44.110:80 -r 192.168.10.3:80 -m
-a -t 207.175.44.110:80 -r 192.168.10.4:80 -m
-a -t 207.175.44.110:80 -r 192.168.10.5:80 -m
" | ipvsadm -R
""",
    "2-fwmark": """
ipvsadm -A -f 1  -s rr
ipvsadm -a -f 1 -r 192.168.10.1:0 -m
ipvsadm -a -f 1 -r 192.168.10.2:0 -m
ipvsadm -a -f 1 -r 192.168.10.3:0 -m
ipvsadm -a -f 1 -r 192.168.10.4:0 -m
ipvsadm -a -f 1 -r 192.168.10.5:0 -m
""",
    "3-gue": """
ipvsadm -A -t 207.175.44.110:80 -s rr
ipvsadm -a -t 207.175.44.110:80 -r 192.168.10.1:80 -i --tun-type gue \\
--tun-port 6080 --tun-nocsum
ipvsadm -a -t 207.175.44.110:80 -r 192.168.10.2:80 -i --tun-type gue \\
--tun-port 6080 --tun-csum
ipvsadm -a -t 207.175.44.110:80 -r 192.168.10.3:80 -i --tun-type gue \\
--tun-port 6080 --tun-remcsum
ipvsadm -a -t 207.175.44.110:80 -r 192.168.10.4:80 -i --tun-type gue \\
--tun-port 6078
ipvsadm -a -t 207.175.44.110:80 -r 192.168.10.5:80 -i --tun-type gue \\
--tun-port 6079
""",
    "3-gue-restore": """
echo "
-A -t 207.175.44.110:80 -s rr
-a -t 207.175.44.110:80 -r 192.168.10.1:80 -i --tun-type gue --tun-port 6080 \\
--tun-nocsum
-a -t 207.175.44.110:80 -r 192.168.10.2:80 -i --tun-type gue --tun-port 6080 \\
--tun-csum
-a -t 207.175.44.110:80 -r 192.168.10.3:80 -i --tun-type gue --tun-port 6080 \\
--tun-remcsum
-a -t 207.175.44.110:80 -r 192.168.10.4:80 -i --tun-type gue --tun-port 6078
-a -t 207.175.44.110:80 -r 192.168.10.5:80 -i --tun-type gue --tun-port 6079
" | ipvsadm -R
""",
    "4-gre": """
ipvsadm -A -t 10.0.0.1:80 -s rr
ipvsadm -a -t 10.0.0.1:80 -r 192.168.11.1:80 -i --tun-type gre \\
--tun-csum
""",
    "ipv6": """
ipvsadm -A -t [2001:db8::80]:80 -s rr
ipvsadm -a -t [2001:db8::80]:80 -r [2001:db8::a0a0]:80 -m
""",
}


def _ipvsctl_command() -> str:
    script = shutil.which("ipvsctl", path=os.path.dirname(sys.executable))
    assert script, "the ipvsctl console script is not installed in this environment"
    return script


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_man_page_example(netns_pair, name):
    ref, ours = netns_pair
    script = "set -e\n" + EXAMPLES[name]
    want = ref.run(["bash", "-c", script])
    assert want.returncode == 0, want.stderr
    # The same text, with ipvsadm the shell function that runs ipvsctl.
    ours_script = f'ipvsadm() {{ "{_ipvsctl_command()}" "$@"; }}\n' + script
    got = ours.run(["bash", "-c", ours_script])
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)
    assert not compare_state(ref, ours)
