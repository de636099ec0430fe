"""The restore shortcut (ipvsctl/fastline.py) against the full grammar:
for every line it takes, the Request must be the one grammar.parse gives;
every line the grammar refuses, it must leave to the grammar."""

from __future__ import annotations

import itertools
import random

import pytest

from ipvsctl.fastline import request as fast_request
from ipvsctl.grammar import ParseError, parse
from ipvsctl.ops import is_change, to_request


def full(words):
    try:
        cmd = parse(words)
    except ParseError:
        return "error"
    return to_request(cmd) if is_change(cmd) else "not a change"


SERVICES = ["10.0.0.1:80", "10.0.0.1:0", "10.0.0.1", "1.2:8080", "0x0a.0.0.1:80", "10.0.0.1:99999",
            "10.0.0.1:http", "[2001:db8::1]:80", "localhost:80", "10.0.0.1:080", "10.0.0.1: 80"]
SERVERS = ["10.1.0.1:8080", "10.1.0.1", "10.1.0.1:0", "10.1.0.2:65535", "10.1.0.1:65536",
           "[2001:db8::2]:80", "10.1.0.1:ssh"]
CORPUS = [
    "-A -t {s}", "-A -t {s} -s rr", "-A -u {s} -s wrr -p", "-A -t {s} -p 300 -s sh",
    "-A -t {s} -p 0", "-A -t {s} -p x", "-A -t {s} -p -s lc", "-A -t {s} -s", "-A -t {s} -s rr -s wlc",
    "-E -t {s} -s averyveryverylongname", "-A --tcp-service {s} -s rr", "-A -t {s} -t {s}",
    "-A -t {s} -o", "-A -t {s} -s rr foo", "-A -s rr -t {s}",
    "-a -t {s} -r {r}", "-a -t {s} -r {r} -m", "-a -t {s} -r {r} -g -w 3", "-a -u {s} -r {r} -i -w 0",
    "-a -t {s} -r {r} -m -w 65536", "-a -t {s} -r {r} -m -w 2147483648", "-a -t {s} -r {r} -m -w -1",
    "-a -t {s} -r {r} -m -x 10 -y 20", "-e -t {s} -r {r} -m -w 7", "-a -r {r} -t {s} -m",
    "-a -t {s} -r {r} -m -m", "-a -t {s} -r {r} -m -g", "-a -t {s} -r {r} -w", "-a -t {s}",
    "-a -t {s} -r {r} -m -s rr", "-a -t {s} -r {r} -i --tun-type gre", "-d -t {s} -r {r}",
    "-D -t {s}", "-a --udp-service {s} --real-server {r} -m", "-a -t {s} -r {r} -m -w 03",
]


def lines():
    for template, s, r in itertools.product(CORPUS, SERVICES, SERVERS):
        yield template.format(s=s, r=r).split()


def test_the_shortcut_agrees_with_the_grammar_on_every_line_it_takes():
    taken = 0
    for words in lines():
        fast = fast_request(words)
        if fast is None:
            continue
        taken += 1
        assert full(words) == fast, words
    assert taken > 100  # the corpus does exercise the shortcut


@pytest.mark.parametrize("seed", range(3))
def test_random_common_lines(seed):
    rng = random.Random(seed)
    for _ in range(2000):
        s = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}:{rng.randrange(65536)}"
        r = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.0.{rng.randrange(256)}:{rng.randrange(65536)}"
        words = rng.choice([
            ["-A", "-t", s, "-s", rng.choice(["rr", "wlc", "sh"])],
            ["-A", "-u", s, "-p", str(rng.randrange(0, 5000))],
            ["-a", "-t", s, "-r", r, rng.choice(["-m", "-g", "-i"]), "-w", str(rng.randrange(0, 9))],
        ])
        fast = fast_request(words)
        if fast is not None:
            assert full(words) == fast, words
