"""Spot misspelled option names in clients.conf: ``intervall``, ``fingreprint``, ``keyid``.

clients.conf may hold keys of the admin's own, for ``%(name)s`` expansions (REFERENCE A3), so an
unknown name is no error. But a name one or two edits (insert, delete, replace, swap two
neighbours) from a known one is almost surely a typo that silently keeps the default, and gets
a warning naming its place. Pure: text in, warning lines out.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterable
from typing import Final

from mandos.core.config_files import CLIENT_DEFAULTS

#: Every option clients.conf gives a meaning to.
CLIENT_OPTIONS: frozenset[str] = frozenset(
    {*CLIENT_DEFAULTS, "key_id", "fingerprint", "secret", "secfile"}
)
#: How far a typo may be from the name it misspells.
_MAX_EDITS: Final = 2


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: inserts, deletes, replacements, adjacent swaps."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        row = [i]
        for j, cb in enumerate(b, start=1):
            cost = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, prev2[j - 2] + 1)
            row.append(cost)
        prev2, prev = prev, row
    return prev[-1]


def did_you_mean(name: str, known: Iterable[str] = CLIENT_OPTIONS) -> str | None:
    """The known name ``name`` is a likely typo of (two edits, one for short names), or None."""
    if name in known:
        return None
    # Names whose lengths differ by more than two are more than two edits apart: a line of a
    # base64 secret that ends in "=" reads as a long name, and 10,000 of them took 14 s.
    near = [k for k in known if abs(len(k) - len(name)) <= _MAX_EDITS]
    if not near:
        return None
    best = min(near, key=lambda k: (edit_distance(name, k), k))
    distance = edit_distance(name, best)
    return best if 0 < distance <= (_MAX_EDITS if len(best) >= 6 else 1) else None


#: The longest name that may be a typo of a known one.
_LONGEST: Final = max(map(len, CLIENT_OPTIONS)) + _MAX_EDITS

#: A superset of the option names ``ConfigParser`` reads from a text (before lower-casing)
#: that may be typos: on every line, the first word up to the first ``=`` or ``:`` (with the
#: blanks before it), leading blanks left out, unless it is a known name in lower case (most
#: lines: no string is made for them) or longer than any typo (lower-casing never shortens a
#: name; the lines of a base64 secret are not followed to their end). Lines are found by their
#: "\n" (the engine searches for a literal prefix fast), not by ``^``; the possessive ``+``
#: never gives back what a name cannot do without (10,000 keygen sections: 370 -> 40 ms).
_SUSPECT_NAME_BEFORE_DELIMITER: Final = re.compile(
    r"\n[^\S\n]*+(?!(?:"
    + "|".join(map(re.escape, sorted(CLIENT_OPTIONS)))
    + rf")[^\S\n]*+[=:])(\S[^=:\n]{{0,{_LONGEST - 1}}}+)[^\S\n]*+[=:]"
)


def maybe_suspect(text: str) -> set[str]:
    """Every option name ``ConfigParser`` could read from ``text`` that is not in
    :data:`CLIENT_OPTIONS` and may be a typo of one, lower-cased (and more)."""
    found = _SUSPECT_NAME_BEFORE_DELIMITER.findall("\n" + text)
    return {name.rstrip().lower() for name in found}


def misspelled_options(text: str, origin: str = "clients.conf") -> list[str]:
    """One warning per line that sets a likely misspelled option, in file order."""
    # One regular-expression pass first: with 10,000 clients, reading the text with
    # ConfigParser only to find nothing cost more than the rest of the start-up.
    if not any(did_you_mean(name) for name in maybe_suspect(text)):
        return []
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return []  # the real parser reports it
    written = set(parser.defaults()).union(*(parser.options(s) for s in parser.sections()))
    suspects = {name: guess for name in written if (guess := did_you_mean(name)) is not None}
    warnings = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        match = re.match(r"([^=:\s][^=:]*?)\s*[=:]", line)
        name = match.group(1).lower() if match else None
        if name in suspects:
            warnings.append(
                f"{origin}:{lineno}: unknown option {name!r}; did you mean {suspects[name]!r}?"
            )
    return warnings
