"""popt's tokenising of a command line, as ipvsadm 1.31 sees it.

Strategy: ipvsadm reads its argv with popt, and what popt accepts and the
first error it reports (bundled short options, optional values, ``=``,
leftovers, ``!#:+``) are part of ipvsadm's interface.  ``scan`` follows
popt 1.19's ``poptGetNextOpt`` (read from its source, checked against the
real ipvsadm word for word) over a table of ``Opt`` values; which options
exist and what they mean is ipvsctl.grammar's.  ``ParseError`` is the one
error of a refused command line, with ipvsadm's exit status.
"""

from __future__ import annotations

from ipvsctl.vocab import EXIT_INVALID, EXIT_USAGE

NONE, REQUIRED, OPTIONAL = 0, 1, 2  # an option's argument: none, required, optional


class ParseError(Exception):
    """A command line ipvsadm would refuse: message for stderr, exit status.

    ``try_help`` marks the errors that ipvsadm reports with its
    "Try `ipvsadm -h' ..." line instead of a message of its own.
    """

    def __init__(self, message: str, exit_code: int = EXIT_INVALID, try_help: bool = False):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.try_help = try_help


class Opt:
    """One option: long and short name, argument arity (NONE, REQUIRED,
    OPTIONAL), and what the parser does with it (``action``: see
    grammar._apply_option)."""

    __slots__ = ("long", "short", "arity", "action")

    def __init__(self, long: str, short: str | None, arity: int, action: str):
        self.long = long
        self.short = short
        self.arity = arity
        self.action = action

    def __repr__(self) -> str:
        return f"Opt({self.long!r}, {self.short!r}, {self.arity!r}, {self.action!r})"


def scan(argv, long_options: dict, short_options: dict):
    """Split argv into (opt, value, spelling) for each option and
    (None, word, word) for each leftover word, in order, as popt 1.19's
    poptGetNextOpt sees them.

    ``spelling`` is the word popt last consumed when it handed the option
    over (``poptBadOption``), which is what ipvsadm names in "invalid option
    `...'": the whole cluster for ``-AL``, the value word for
    ``--stop-daemon master``.

    popt's rules, as this scanner follows them:

    * ``--`` makes every later word a leftover; ``-`` and words not
      starting with ``-`` (the empty word too) are leftovers.  With
      POSIXLY_CORRECT or POSIX_ME_HARDER in the environment, the first
      leftover makes every later word one as well.
    * ``--name`` must be a whole long name (no abbreviations);
      ``--name=value`` gives the value, even an empty one; an option
      without an argument refuses ``=`` ("option does not take an
      argument").
    * A single dash starts a cluster of short options (ipvsadm has no
      one-dash long options).  An option without an argument refuses a
      following ``=``.  An option with an argument takes the rest of the
      cluster, without one leading ``=`` (``-w=3``, ``-w3``; ``-w=`` is the
      empty value); at the end of the cluster it takes the next word,
      whatever it looks like, except that an optional argument (``-p``)
      takes no word starting with ``-``.
    * In any option's value, ``!#:+`` stands for the next word that does
      not start with ``-``, which is then skipped as a leftover (popt's
      alias syntax; it applies to plain options too).

    Returns (tokens, error): popt's own error (unknown option, missing or
    unwanted argument) ends the scan; the caller raises it after acting on
    the tokens before it, which is when ipvsadm reports it.
    """
    out = []
    add = out.append
    i, n = 0, len(argv)
    taken = None  # indices of words a "!#:+" consumed (popt's argb)
    rest_leftover = False
    while i < n:
        word = argv[i]
        i += 1
        if taken is not None and (i - 1) in taken:
            continue
        if rest_leftover or word[:1] != "-" or word == "-":
            add((None, word, word))
            if not rest_leftover and _posix_me_harder():
                rest_leftover = True
            continue
        if word == "--":
            rest_leftover = True
            continue
        if word[1] == "-":
            name, eq, inline = word[2:].partition("=")
            opt = long_options.get(name)
            if opt is None:
                return out, ParseError(f"{word}: unknown option", EXIT_USAGE)
            if opt.arity == NONE:
                if eq:
                    return out, ParseError(f"{word}: option does not take an argument", EXIT_USAGE)
                add((opt, None, word))
                continue
            value, i, taken = _value(opt, word, inline if eq else None, argv, i, taken)
            if value is _MISSING:
                return out, ParseError(f"{word}: missing argument", EXIT_USAGE)
            add((opt, value, argv[i - 1]))
            continue
        j, length = 1, len(word)
        while j < length:
            ch = word[j]
            j += 1
            opt = short_options.get(ch)
            if opt is None:
                # popt names the whole word ("-Lnq"), not just the letter.
                return out, ParseError(f"{word}: unknown option", EXIT_USAGE)
            if opt.arity == NONE:
                if word[j:j + 1] == "=":
                    return out, ParseError(f"{word}: option does not take an argument", EXIT_USAGE)
                add((opt, None, word))
                continue
            rest = (word[j + 1:] if word[j] == "=" else word[j:]) if j < length else None
            value, i, taken = _value(opt, word, rest, argv, i, taken)
            if value is _MISSING:
                return out, ParseError(f"{word}: missing argument", EXIT_USAGE)
            add((opt, value, argv[i - 1]))
            break
    return out, None


#: _value's answer when an option's required value is not there.
_MISSING = object()


def _value(opt, word: str, inline: str | None, argv: list[str], i: int, taken):
    """(value, index of the next word, taken) of an option that takes a
    value: ``inline`` (what its own word held after it, None for nothing),
    else the next word, which an optional value (-p) leaves when it starts
    with "-"; None when an optional value is absent, _MISSING when a required
    one is.  "!#:+" in the value stands for the next word (see parse)."""
    if inline is not None:
        value = inline
    elif i >= len(argv):
        return (None if opt.arity == OPTIONAL else _MISSING), i, taken
    elif opt.arity == OPTIONAL and argv[i][:1] == "-":
        value = None
    else:
        value = argv[i]
        i += 1
    if value is not None and "!#:+" in value:
        value, taken = _expand_next_arg(value, argv, i, taken)
    return value, i, taken


def _posix_me_harder() -> bool:
    # Read only when a leftover word appears, which a valid line rarely has.
    import os

    return "POSIXLY_CORRECT" in os.environ or "POSIX_ME_HARDER" in os.environ


def _expand_next_arg(value: str, argv, start: int, taken):
    """popt's expandNextArg: every "!#:+" in an option's value becomes the
    first later word that does not start with "-" (and was not taken
    before), and that word is taken out of the line.  Without such a word
    the text stays as it is."""
    taken = set() if taken is None else taken
    for k in range(start, len(argv)):
        if k not in taken and argv[k][:1] != "-":
            taken.add(k)
            return value.replace("!#:+", argv[k]), taken
    return value, taken
