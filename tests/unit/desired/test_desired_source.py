"""Reading the desired table: -S rule lines (through -R's parser) or JSON."""

from __future__ import annotations

import pytest

from ipvsctl import model as m
from ipvsctl.desired import source
from ipvsctl.render.json import dumps, table_doc

RULES = """\
# a desired table, as -S writes it (comments allowed)
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 3
-a -t 10.0.0.1:80 -r 10.1.0.2 -g -w 0
-a -t 10.0.0.1:80 -r 10.1.0.3 -i --tun-type gue --tun-port 6080 --tun-csum -x 100 -y 10

ipvsadm -A -u 10.0.0.2:53 -s wrr -o
-A -t 10.0.0.3:443 -s sh -b sh-port -p 900 -M 255.255.255.0 --pe sip
-A -t [2001:db8::1]:80 -s lc -p -M 64
-a -t [2001:db8::1]:80 -r [2001:db8::2]:8080 -m
-A -f 42 -s wlc
-a -f 42 -r 10.1.2.1 -m
-A -f 43 -6
"""


def test_rules_give_model_values_with_ipvsadms_defaults():
    t = source.load(RULES)
    keys = [svc.key for svc, _ in t]
    assert len(t) == 6 and t.destination_count == 5
    assert keys[0] == m.ServiceKey(m.AF_INET, m.IPPROTO_TCP, "10.0.0.1", 80)
    svc, dests = t.entries[0]
    assert svc == m.Service(keys[0], "rr")
    assert dests[0] == m.Destination(m.AF_INET, "10.1.0.1", 8080, m.FWD_MASQ, 3)
    assert dests[1].port == 80 and dests[1].weight == 0  # -g takes the service's port
    assert (dests[2].tun_type, dests[2].tun_port, dests[2].tun_flags, dests[2].u_threshold) == (1, 6080, 1, 100)
    v6 = t.entries[3][0]
    assert v6.timeout == 360 and v6.netmask == 64  # -p alone is 360 s; IPv6 masks are prefixes
    assert t.entries[5][0].key == m.ServiceKey(m.AF_INET6, fwmark=43)
    assert t.entries[5][0].scheduler == "wlc"
    assert t.origins[keys[1]] == "line 7"


def test_json_input_is_equivalent_to_rule_input():
    rules = source.load(RULES)
    text = dumps(table_doc(None, rules.entries))
    assert source.is_json("\n  " + text)
    doc = source.load(text)
    assert doc.entries == rules.entries
    assert doc.origins[rules.entries[2][0].key] == "services[2]"


def test_real_servers_may_come_before_their_service():
    t = source.load("-a -t 10.0.0.1:80 -r 10.1.0.1 -m\n-A -t 10.0.0.1:80\n")
    assert len(t.entries[0][1]) == 1


@pytest.mark.parametrize("line,name", [
    ("-C", "-C (clear the table)"), ("-D -t 10.0.0.1:80", "-D (delete a service)"),
    ("-E -t 10.0.0.1:80 -s rr", "-E (edit a service)"),
    ("-e -t 10.0.0.1:80 -r 10.1.0.1 -m -w 1", "-e (edit a real server)"),
    ("-d -t 10.0.0.1:80 -r 10.1.0.1", "-d (delete a real server)"),
    ("--set 1 2 3", "--set (timeouts)"), ("-Ln", "-L (list)"), ("-Z", "-Z (zero counters)"),
])
def test_any_other_command_is_refused_with_its_line_number(line, name):
    with pytest.raises(source.InputError) as e:
        source.load(f"-A -t 10.0.0.1:80\n\n{line}\n")
    assert e.value.message.startswith(f"line 3: {name} has no place in a desired table")
    assert e.value.exit_code == 2


def test_a_bad_line_is_named_with_ipvsadms_message_and_status():
    with pytest.raises(source.InputError) as e:
        source.load("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1 -w x\n")
    assert (e.value.message, e.value.exit_code) == ("line 2: illegal weight specified", 2)
    with pytest.raises(source.InputError) as e:
        source.load("-A -t 10.0.0.1:80 --bogus\n")
    assert e.value.exit_code == 255 and e.value.message.startswith("line 1: ")


def test_duplicates_and_orphans_are_refused():
    with pytest.raises(source.InputError, match="line 2: TCP 10.0.0.1:80 is already defined on line 1"):
        source.load("-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80 -s rr\n")
    with pytest.raises(source.InputError, match="line 3: real server 10.1.0.1:80 of TCP 10.0.0.1:80 is "
                                                "already listed on line 2"):
        source.load("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1\n-a -t 10.0.0.1:80 -r 10.1.0.1 -w 2\n")
    with pytest.raises(source.InputError, match="line 2: real server of TCP 10.0.0.9:80, which no -A"):
        source.load("-A -t 10.0.0.1:80\n-a -t 10.0.0.9:80 -r 10.1.0.1\n")


def test_bad_json_names_the_field():
    with pytest.raises(source.InputError, match=r"services\[0\].scheduler"):
        source.load('{"services": [{"protocol": "tcp", "address": "10.0.0.1", "port": 80, "scheduler": 5}]}')
    with pytest.raises(source.InputError, match="not valid JSON"):
        source.load("{nope")


def test_an_empty_file_is_an_empty_table():
    assert len(source.load("")) == 0 and len(source.load("# nothing\n\n")) == 0
