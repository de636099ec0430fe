"""restore --json's reader (also diff's and apply's) against careless and
hostile documents: each gives a DocumentError naming what is wrong, never
another exception and never a table that is not what the document says."""

from __future__ import annotations

import pytest

from ipvsctl import jsonrestore, schedulers
from ipvsctl.commands.group import run_app

SVC = '{"protocol": "tcp", "address": "192.0.2.1", "port": 80'


def error(text: str) -> str:
    with pytest.raises(jsonrestore.DocumentError) as e:
        jsonrestore.loads(text)
    return str(e.value)


@pytest.mark.parametrize("text,message", [
    # json.loads raises these besides JSONDecodeError
    ('{"services": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "not a usable JSON document: arrays or objects nested too deeply"),
    ('{"services": [' + SVC + ', "stats": ' + "[" * 100_000 + "]" * 100_000 + "}]}",
     "not a usable JSON document: arrays or objects nested too deeply"),
    ('{"services": [{"fwmark": ' + "1" * 4301 + "}]}",
     "not a usable JSON document: a number with more digits than Python reads (4300)"),
    # a key twice: json.loads keeps the last one silently
    ('{"services": [], "services": [{"fwmark": 1}]}', "services: given more than once in one object"),
    ('{"services": [' + SVC + ', "destinations": [{"address": "198.51.100.1", "weight": 1, '
     '"weight": 0}]}]}', "services[0].destinations[0].weight: given more than once in one object"),
    # a NUL: the kernel would read the name only up to it, and the module
    # loader cannot be asked about it (subprocess refuses the argument)
    ('{"services": [' + SVC + ', "scheduler": "rr\\u0000x"}]}',
     'services[0].scheduler: "rr\\u0000x" holds a NUL character'),
    ('{"services": [' + SVC + ', "pe": "\\u0000"}]}', 'services[0].pe: "\\u0000" holds a NUL character'),
    # inet_pton raises ValueError, not OSError, for a NUL
    ('{"services": [' + SVC + ', "netmask": "255.0\\u0000"}]}',
     'services[0].netmask: expected an IPv4 netmask like "255.255.255.0", got "255.0\\u0000"'),
    # a lone surrogate ("\udcff" in JSON): str.encode raised UnicodeEncodeError
    ('{"services": [' + SVC + ', "scheduler": "r\\udcffr"}]}',
     'services[0].scheduler: "r\\udcffr" is not text (a lone surrogate)'),
    ('{"services": [' + SVC + ', "pe": "\\ud800"}]}', 'services[0].pe: "\\ud800" is not text (a lone surrogate)'),
    # a fwmark service's port: 0 (what the kernel reports) or null, and no
    # false or 0.0 that equals 0
    ('{"services": [{"fwmark": 1, "port": false}]}', "services[0].port: must be null for a fwmark service"),
    ('{"services": [{"fwmark": 1, "port": 0.0}]}', "services[0].port: must be null for a fwmark service"),
])
def test_bad_documents_name_what_is_wrong(text, message):
    assert error(text) == message


def test_what_stays_accepted():
    assert jsonrestore.loads('\ufeff{"services": []}') == []  # an editor's byte order mark
    [(svc, _)] = jsonrestore.loads('{"services": [{"fwmark": 1, "port": 0}]}')
    assert svc.key.fwmark == 1
    # read-only fields are ignored, whatever they hold (a key twice included)
    [(svc, _)] = jsonrestore.loads('{"services": [' + SVC + ', "stats": {"conns": 1, "conns": 2}}]}')
    assert svc.key.port == 80


def test_restore_json_says_so_and_exits_2(tmp_path, capfd):
    f = tmp_path / "deep.json"
    f.write_text('{"services": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert run_app(["restore", "--json", str(f)]) == 2
    assert capfd.readouterr().err == ("ipvsctl: restore: not a usable JSON document: arrays or "
                                      "objects nested too deeply (nothing was changed)\n")


def test_a_nul_never_reaches_the_module_loader(tmp_path):
    # What the check would do with it: subprocess raises ValueError, which
    # was a traceback inside the guest (the host here has no loader).
    helper = tmp_path / "modprobe"
    helper.write_text("/bin/true\n")
    probe = schedulers.Probe(proc_modules=str(tmp_path / "none"), sys_module=str(tmp_path),
                             helper_file=str(helper), disabled_file=str(tmp_path / "none"))
    with pytest.raises(ValueError):
        schedulers.check("scheduler", "rr\x00x", probe)
    assert "NUL" in error('{"services": [' + SVC + ', "scheduler": "rr\\u0000x"}]}')
