"""The ipvsadm grammar without a kernel: what a line means, and which error
wins.  The exact wording of every message is checked against the real
ipvsadm by the kernel tier (tests/kernel/test_differential.py); here we pin
the semantics the rest of ipvsctl relies on."""

from __future__ import annotations

import random
import re

import pytest

from ipvsctl import model as m
from ipvsctl.cvalues import c_strtol, parse_address
from ipvsctl.grammar import ParseError, parse, split_restore_line


def err(argv):
    with pytest.raises(ParseError) as e:
        parse(argv)
    return e.value


def test_defaults_of_a_service():
    svc = parse(["-A", "-t", "10.0.0.1:80"]).service()
    assert svc.key == m.ServiceKey(af=m.AF_INET, protocol=m.IPPROTO_TCP, addr="10.0.0.1", port=80)
    assert (svc.scheduler, svc.flags, svc.timeout, svc.netmask) == ("wlc", 0, 0, 0xFFFFFFFF)


def test_persistent_without_value_takes_360_and_does_not_eat_the_next_option():
    c = parse(["-A", "-t", "10.0.0.1:80", "-p", "-s", "rr"])
    assert (c.timeout, c.scheduler, c.flags & m.SVC_F_PERSISTENT) == (360, "rr", 1)
    assert parse(["-A", "-t", "10.0.0.1:80", "-p", "100"]).timeout == 100
    assert parse(["-A", "-t", "10.0.0.1:80", "-p100"]).timeout == 100


def test_bundled_and_attached_short_options():
    c = parse(["-At10.0.0.9:80"])
    assert c.name == "add-service" and c.port == 80
    c = parse(["-Ln"])
    assert c.name == "list" and c.fmt.numeric


def test_long_options_with_equals():
    c = parse(["--add-server", "--tcp-service=10.0.0.1:80", "--real-server=10.1.1.1:8080",
               "--masquerading", "--weight=3"])
    d = c.destination()
    assert (d.addr, d.port, d.fwd, d.weight) == ("10.1.1.1", 8080, m.FWD_MASQ, 3)


def test_direct_routing_and_tunnel_servers_take_the_service_port():
    d = parse(["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1:8080", "-g"]).destination()
    assert d.port == 80
    d = parse(["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1:8080", "-i"]).destination()
    assert d.port == 80
    d = parse(["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1:8080", "-m"]).destination()
    assert d.port == 8080
    d = parse(["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-m"]).destination()
    assert d.port == 80


def test_fwmark_ipv6_needs_6_after_f():
    c = parse(["-A", "-f", "5", "-6", "-M", "64", "-p"])
    assert c.service_key() == m.ServiceKey(af=m.AF_INET6, fwmark=5)
    assert c.netmask == 64
    assert err(["-A", "-6", "-f", "5"]).message == "-6 used before -f\n"


def test_ipv6_addresses_need_brackets_for_a_port():
    af, packed, port = parse_address("[2001:db8::1]:443", m.IPPROTO_TCP)
    assert (af, port) == (m.AF_INET6, 443)
    assert parse_address("2001:db8::1", m.IPPROTO_TCP)[2] is None
    assert parse_address("[2001:db8::1]", m.IPPROTO_TCP) is None


def test_service_names_resolve_by_protocol():
    assert parse(["-A", "-t", "127.0.0.1:http"]).port == 80
    assert parse(["-A", "-u", "127.0.0.1:domain"]).port == 53


def test_first_error_in_option_order_wins():
    # weight is illegal for -A, and so is real-server; ipvsadm names the one
    # earlier in its option table (real-server).
    e = err(["-A", "-t", "10.0.0.1:80", "-w", "2", "-r", "10.1.1.1"])
    assert e.message == "Illegal 'real-server' option with the 'add-service' command"
    assert e.exit_code == 2


def test_value_errors_come_before_later_popt_errors():
    assert err(["-A", "-w", "x", "--foo"]).message == "illegal weight specified"
    e = err(["-A", "--foo"])
    assert (e.message, e.exit_code) == ("--foo: unknown option", 255)


def test_usage_errors_ask_for_help():
    for argv in (["foo"], ["-n", "-L"], ["--foo"]):
        e = err(argv)
        assert e.try_help and e.exit_code == 255


def test_a_leftover_word_before_the_command():
    assert err(["foo", "-A", "-t", "10.0.0.1:80"]).message == "unexpected argument foo"


def test_sched_flags_are_checked_against_the_scheduler_given_anywhere():
    c = parse(["-A", "-t", "10.0.0.1:80", "-b", "sh-port", "-s", "sh"])
    assert c.flags & m.SVC_F_SCHED_MASK == m.SVC_F_SCHED2
    assert err(["-A", "-t", "10.0.0.1:80", "-b", "sh-port"]).message == "incompatible scheduler flag `sh-port'"


def test_tunnel_options():
    d = parse(["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-i", "--tun-type", "gue",
               "--tun-port", "6080", "--tun-remcsum"]).destination()
    assert (d.tun_type, d.tun_port, d.tun_flags) == (m.TUN_GUE, 6080, m.TUN_F_REMCSUM)
    assert err(["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-m", "--tun-type", "gre"]).message == \
        "Tunnel options conflict with forward method"


def test_set_takes_three_timeouts():
    assert parse(["--set", "900", "120", "300"]).timeouts == m.Timeouts(900, 120, 300)
    assert err(["--set", "1", "2"]).message == "--set option requires 3 timeout values"


def test_strtol_rules():
    assert c_strtol(" 80") == 80 and c_strtol("+7") == 7 and c_strtol("-3") == -3
    assert c_strtol("80 ") is None and c_strtol("0x10") is None and c_strtol("") is None
    assert c_strtol("99999999999999999999") is None  # ERANGE


def test_restore_words():
    assert split_restore_line("ipvsadm -A\t-t 1.2.3.4:80\r") == ["-A", "-t", "1.2.3.4:80"]
    assert split_restore_line("   ") == []


def test_restore_lines_split_on_space_tab_and_cr_only():
    # ipvsadm's -R splits words on spaces, tabs and carriage returns; any
    # other character, control or not, is part of a word.
    rng = random.Random(7)
    alphabet = ["-a", "-t", "1.2.3.4:80", "ipvsadm", " ", "  ", "\t", "\r", "\x0b", "\x0c", "é", "\u00a0", "x"]
    for _ in range(3000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        words = [w for w in re.split("[ \t\r]", line) if w and w != "ipvsadm"]
        assert split_restore_line(line) == words, repr(line)


def test_popt_equals_after_a_short_option():
    # popt strips one "=" after a short option that takes a value
    c = parse(["-a", "-t=10.0.0.1:80", "-r=10.1.1.1:8080", "-mw=3", "-x=9", "-y=2"])
    d = c.destination()
    assert (c.port, d.port, d.weight, d.u_threshold, d.l_threshold) == (80, 8080, 3, 9, 2)
    assert parse(["-A", "-t", "10.0.0.1:80", "-p=30"]).timeout == 30
    assert err(["-A", "-t", "10.0.0.1:80", "-p="]).message == "invalid timeout value `' specified"
    # ... and refuses "=" after one that takes none
    e = err(["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-m="])
    assert (e.message, e.exit_code) == ("-m=: option does not take an argument", 255)


def test_invalid_option_names_the_word_popt_consumed_last():
    assert err(["-AL"]).message == "invalid option `-AL'"
    assert err(["-A", "-t", "10.0.0.1:80", "--stop-daemon", "master"]).message == "invalid option `master'"
