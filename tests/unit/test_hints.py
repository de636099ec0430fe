"""hints.missing_service: what a user probably meant (no kernel needed)."""

from __future__ import annotations

from ipvsctl import model as m
from ipvsctl.hints import missing_service

TCP, UDP = m.IPPROTO_TCP, m.IPPROTO_UDP
KEYS = [m.ServiceKey(m.AF_INET6, TCP, "fd00:18::10", 80), m.ServiceKey(m.AF_INET6, fwmark=200),
        m.ServiceKey(m.AF_INET, UDP, "192.0.2.10", 53), m.ServiceKey(m.AF_INET, TCP, "192.0.2.10", 80),
        m.ServiceKey(m.AF_INET, TCP, "192.0.2.10", 443), m.ServiceKey(m.AF_INET, fwmark=7)]


def test_ipv6_without_brackets():
    key = m.ServiceKey(m.AF_INET6, TCP, "fd00:18::10:80", 0)
    assert missing_service(key, "fd00:18::10:80", KEYS).startswith(
        "No such service (-t [fd00:18::10:80]:0); did you mean -t [fd00:18::10]:80? ")
    assert "did you mean" not in missing_service(key, "fd00:18::10:80", [])
    assert missing_service(key, "[fd00:18::10:80]:0", KEYS) == "No such service"


def test_fwmark_of_the_other_family():
    assert missing_service(m.ServiceKey(m.AF_INET, fwmark=200), "200", KEYS).endswith(
        "there is an IPv6 fwmark service 200: add -6 after -f (-f 200 -6)")
    assert missing_service(m.ServiceKey(m.AF_INET6, fwmark=7), "7", KEYS).endswith(
        "only the IPv4 fwmark service 7 exists: leave out -6")
    assert missing_service(m.ServiceKey(m.AF_INET, fwmark=8), "8", KEYS) == "No such service"


def test_other_protocol_and_missing_port():
    assert missing_service(m.ServiceKey(m.AF_INET, TCP, "192.0.2.10", 53), "192.0.2.10:53", KEYS).endswith(
        "there is a UDP service there: -u 192.0.2.10:53")
    assert missing_service(m.ServiceKey(m.AF_INET, TCP, "192.0.2.10", 0), "192.0.2.10", KEYS).endswith(
        "without a port it is port 0; did you mean -t 192.0.2.10:80 or -t 192.0.2.10:443?")
