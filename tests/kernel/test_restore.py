"""-S and -R in a real kernel: round trips through both tools, and restores
that fail part way (docs/compat.md says where ipvsctl parts from ipvsadm)."""

from __future__ import annotations

from differential import compare_state, ipvsadm, ipvsctl, unsigned_fwmarks

# A table that uses every setting -S can write.
TABLE = [
    "-A -t 10.20.0.1:80 -s rr",
    "-a -t 10.20.0.1:80 -r 10.21.0.1:8080 -m -w 3",
    "-a -t 10.20.0.1:80 -r 10.21.0.2 -g -w 0",
    "-a -t 10.20.0.1:80 -r 10.21.0.3 -i --tun-type gue --tun-port 6080 --tun-csum",
    "-a -t 10.20.0.1:80 -r 10.21.0.4 -i --tun-type gre --tun-nocsum",
    "-a -t 10.20.0.1:80 -r 10.21.0.5 -i",
    "-A -u 10.20.0.2:53 -s wrr -o",
    "-a -u 10.20.0.2:53 -r 10.21.1.1:5353 -m -w 2",
    "-A -u 10.20.0.3:5060 -s rr -p 60 --pe sip",
    "-A -t 10.20.0.4:443 -s sh -b sh-fallback,sh-port -p 900 -M 255.255.255.0",
    "-A --sctp-service 10.20.0.5:3868 -s mh -b mh-port",
    "-A -t [2001:db8:20::1]:80 -s lc -p 30 -M 64",
    "-a -t [2001:db8:20::1]:80 -r [2001:db8:21::1]:8080 -m",
    "-A -f 42 -s wlc",
    "-a -f 42 -r 10.21.2.1:0 -m",
    "-A -f 43 -6 -s rr",
    "-a -f 43 -6 -r [2001:db8:21::9]:0 -g",
]


def _build(ns, tool, lines=TABLE):
    for line in lines:
        r = tool(ns, line.split())
        assert r.status == 0, (line, r)


def test_ipvsadm_save_restores_through_ipvsctl(netns_pair):
    ref, ours = netns_pair
    _build(ref, ipvsadm)
    saved = ipvsadm(ref, ["-Sn"])
    assert saved.status == 0
    r = ipvsctl(ours, ["-R"], input=saved.out)
    assert r == type(r)(0, "", ""), r
    assert not compare_state(ref, ours)


def test_ipvsctl_save_restores_through_ipvsadm(netns_pair):
    ref, ours = netns_pair
    _build(ours, ipvsctl)
    saved = ipvsctl(ours, ["-Sn"])
    assert saved.status == 0
    r = ipvsadm(ref, ["-R"], input=saved.out)
    assert r.status == 0 and r.err == "", r
    assert not compare_state(ref, ours)


def test_save_keeps_thresholds_and_restore_brings_them_back(netns_pair):
    """ipvsadm -S drops -x/-y; ipvsctl -S keeps them (docs/compat.md)."""
    ref, ours = netns_pair
    lines = ["-A -t 10.22.0.1:80", "-a -t 10.22.0.1:80 -r 10.23.0.1 -m -x 500 -y 100",
             "-a -t 10.22.0.1:80 -r 10.23.0.2 -m -x 7", "-a -t 10.22.0.1:80 -r 10.23.0.3 -m"]
    _build(ref, ipvsadm, lines)
    saved = ipvsctl(ref, ["-Sn"])
    assert " -x 500 -y 100" in saved.out and " -x 7\n" in saved.out
    r = ipvsctl(ours, ["-R"], input=saved.out)
    assert r.status == 0, r
    assert not compare_state(ref, ours)  # includes -Ln --thresholds


def test_high_fwmarks_survive_save_and_restore(netns_pair):
    """ipvsadm prints marks >= 2^31 negative, so its -S cannot be restored;
    ipvsctl prints them unsigned."""
    ref, ours = netns_pair
    _build(ref, ipvsadm, ["-A -f 4294967295 -s rr", "-A -f 2147483648", "-A -f 7"])
    saved = ipvsctl(ref, ["-Sn"])
    assert saved.out == unsigned_fwmarks(ipvsadm(ref, ["-Sn"]).out)
    assert "-A -f 4294967295 -s rr" in saved.out
    assert ipvsctl(ours, ["-R"], input=saved.out).status == 0
    assert not compare_state(ref, ours)


def test_restore_stream_like_ipvsadm_reads_it(netns_pair):
    """Blank lines, a leading 'ipvsadm' word, tabs and CRs, as ipvsadm -R takes them."""
    ref, ours = netns_pair
    stream = ("\n-A -t 10.24.0.1:80 -s rr\n\nipvsadm -a -t 10.24.0.1:80 -r 10.25.0.1 -m\n"
              "  -a\t-t 10.24.0.1:80   -r 10.25.0.2 -m -w 4\r\n-A -u 10.24.0.2:53")
    want = ipvsadm(ref, ["-R"], input=stream)
    got = ipvsctl(ours, ["-R"], input=stream)
    assert want == got
    assert not compare_state(ref, ours)


def test_restore_words_end_at_a_nul_as_ipvsadm_reads_them(netns_pair):
    """ipvsadm reads each word of a -R line into a C string: a NUL ends the
    word there, the words after it still count, and a word that starts
    with a NUL is an empty word (a line of one refused as usage)."""
    ref, ours = netns_pair
    stream = ("-A -t 10.24.1.1:80\0junk -s wrr\0x\n-a -t 10.24.1.1:80 -r 10.25.1.1\0 -m -w 2\n"
              "ipvsadm\0\n-A -t 10.24.1.2:80 -s\0 rr\n-Ln -t 10.24.1.1:80\0\n")
    want = ipvsadm(ref, ["-R"], input=stream)
    assert want.status == 0 and want.err == ""
    assert ipvsctl(ours, ["-R"], input=stream) == want
    assert not compare_state(ref, ours)
    want = ipvsadm(ref, ["-R"], input="\0\n-A -t 10.24.1.3:80\n")
    got = ipvsctl(ours, ["-R"], input="\0\n-A -t 10.24.1.3:80\n")
    assert want.status == got.status == 255
    assert got.err == "line 1: " + want.err + "restore: nothing was applied (the kernel table is unchanged)\n"
    assert not compare_state(ref, ours)


def test_restore_words_longer_than_4096_bytes_go_on_as_the_next_word(netns_pair):
    """ipvsadm scans a -R word into 4096 bytes: the rest of a longer word is
    the next word (here a leftover, "unexpected argument")."""
    ref, ours = netns_pair
    x = "x" * 4096
    for stream in (f"-A -t 10.24.2.1:80 -s {x}rr\n", f"{x}-A -t 10.24.2.2:80\n",
                   f"-A -t 10.24.2.3:80 -s {'é' * 2048}rr\n"):
        want = ipvsadm(ref, ["-R"], input=stream)
        got = ipvsctl(ours, ["-R"], input=stream)
        assert want.status == got.status == 2
        assert got.err == "line 1: " + want.err + "restore: nothing was applied (the kernel table is unchanged)\n"
    stream = f"-A -t 10.24.2.4:80 -s {x}\n-A -t 10.24.2.5:80 -s {'x' * 4095}\n"  # names the kernel refuses
    want = ipvsadm(ref, ["-R"], input=stream)
    got = ipvsctl(ours, ["-R"], input=stream)
    assert want.err == "Scheduler or persistence engine not found\n" * 2
    assert got.err.startswith("line 1: Scheduler or persistence engine not found\nline 2: ")
    assert not compare_state(ref, ours)


def test_a_first_line_in_brackets_is_not_taken_for_json(netns_pair):
    """The hint naming `restore --json` is for a JSON document, not for a
    first line that starts with an IPv6 address in brackets."""
    ref, ours = netns_pair
    for stream in ("[2001:db8::9] -d -t 10.24.3.1:80 -r\n", "[::1]:80 -A\n"):
        want = ipvsadm(ref, ["-R"], input=stream)
        got = ipvsctl(ours, ["-R"], input=stream)
        assert want.status == got.status != 0
        assert got.err == "line 1: " + want.err + "restore: nothing was applied (the kernel table is unchanged)\n"


def test_restore_words_that_are_not_utf8(netns_pair):
    """Bytes that are not UTF-8 in a -R line (held as surrogates) are refused
    as ipvsadm refuses them, on every path a line can take."""
    ref, ours = netns_pair
    for stream in ("-A -t 10.24.4.1:80\n-a -t 10.24.4.1:80 -r 1.2.3.4\udcff:80 -m\n",
                   "-A -t 10.24.4.2\udcff:80 -s rr\n", "-A -u [\udcff::1]:53\n"):
        want = ipvsadm(ref, ["-R"], input=stream)
        got = ipvsctl(ours, ["-R"], input=stream)
        assert want.status == got.status == 2
        line = stream.count("\n", 0, stream.index("\udcff")) + 1
        assert got.err == f"line {line}: " + want.err + "restore: nothing was applied (the kernel table is unchanged)\n"


def test_restore_with_a_bad_line_changes_nothing(netns_pair):
    ref, ours = netns_pair
    stream = "-A -t 10.26.0.1:80\n-a -t 10.26.0.1:80 -r 10.27.0.1 -m\n-a -t 10.26.0.1:80 -r 10.27.0.2 -w x\n-A -t 10.26.0.2:80\n"
    # ipvsadm applies lines 1-2, then stops at line 3 with its message.
    want = ipvsadm(ref, ["-R"], input=stream)
    assert want.status == 2 and want.err == "illegal weight specified\n"
    assert "10.26.0.1" in ipvsadm(ref, ["-Sn"]).out
    got = ipvsctl(ours, ["-R"], input=stream)
    assert got.status == want.status
    assert got.err == ("line 3: illegal weight specified\n"
                       "restore: nothing was applied (the kernel table is unchanged)\n")
    assert ipvsadm(ours, ["-Sn"]).out == ""


def test_restore_usage_error_line_changes_nothing(netns_pair):
    _, ours = netns_pair
    got = ipvsctl(ours, ["-R"], input="-A -t 10.28.0.1:80\n--bogus\n")
    assert got.status == 255
    assert got.err.startswith("line 2: Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n")
    assert ipvsadm(ours, ["-Sn"]).out == ""


def test_restore_goes_on_past_kernel_errors_and_fails_overall(netns_pair):
    ref, ours = netns_pair
    stream = ("-A -t 10.29.0.1:80\n-A -t 10.29.0.1:80\n-a -t 10.29.0.1:80 -r 10.30.0.1 -m\n"
              "-a -t 10.29.0.9:80 -r 10.30.0.1 -m\n-a -t 10.29.0.1:80 -r 10.30.0.2 -m\n")
    want = ipvsadm(ref, ["-R"], input=stream)
    # ipvsadm: each kernel error's message, the restore goes on, and the
    # status is the last line's (0 here: the failures are invisible).
    assert want.err == "Service already exists\nService not defined\n" and want.status == 0
    got = ipvsctl(ours, ["-R"], input=stream)
    assert got.status == 255
    assert got.err == ("line 2: Service already exists\nline 4: Service not defined\n"
                       "restore: 2 of 5 commands failed (lines 2, 4), 3 applied\n")
    assert not compare_state(ref, ours)


def test_restore_accepts_comment_lines(netns_pair):
    ref, ours = netns_pair
    _build(ref, ipvsadm, ["-A -t 10.31.0.1:80 -s rr", "-a -t 10.31.0.1:80 -r 10.32.0.1 -m"])
    stream = "# saved by hand\n-A -t 10.31.0.1:80 -s rr\n   # the web pool\n-a -t 10.31.0.1:80 -r 10.32.0.1 -m\n"
    assert ipvsctl(ours, ["-R"], input=stream).status == 0
    assert not compare_state(ref, ours)


def test_list_lines_inside_a_restore_run_in_place(netns_pair):
    ref, ours = netns_pair
    stream = "-A -t 10.33.0.1:80\n-Ln\n-a -t 10.33.0.1:80 -r 10.34.0.1 -m\n-Sn\n"
    want = ipvsadm(ref, ["-R"], input=stream)
    got = ipvsctl(ours, ["-R"], input=stream)
    assert want == got
