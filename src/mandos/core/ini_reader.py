"""A fast reader for the ``configparser`` files that parse cleanly, with the same result.

Rules of this module: :func:`read_sections` gives, for a text that ``ConfigParser`` (default
options: ``=``/``:`` delimiters, ``#``/``;`` whole-line comments, empty lines in values,
``strict``, lower-cased option names, ``BasicInterpolation``) reads without error, exactly
what ``ConfigParser.items(section)`` gives for each section, in file order; ``%``
expansion (:func:`expand`) is a second step per section, so errors come in the parser's
order. It follows ``ConfigParser._read`` line by line but keeps no proxies and no error
lists, and expands only values that hold a ``%``; for any text that parser would refuse it
returns None, and the caller reads the text with ``ConfigParser`` itself, which names the
error. Reading 10,000 clients this way takes a quarter of the time (bench/server_storm.py).
Interpolation errors are the parser's own (``configparser.InterpolationError``).

A text whose options and headers all start in the first column (what ``mandos-keygen``
writes, continuation lines and all) is read without a Python step per line: one regular
expression finds each header and each option with its continuation lines (:data:`_ENTRY`).
Any other text (an indented option, a blank or comment line inside a value, a line that is no
option) goes through the line-by-line reader.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Callable, Mapping
from typing import Final

_SECTION: Final = configparser.ConfigParser.SECTCRE
_DEFAULT: Final = "DEFAULT"
_INTERPOLATION: Final = configparser.BasicInterpolation()
_REFERENCE: Final = re.compile(r"%\(([^)]+)\)s")  # BasicInterpolation's, which is private

#: One entry of a text whose headers and options start in the first column, found after its
#: "\n" (searched for fast, unlike "^"): (1) what follows a "[" (a header, if it holds a "]"),
#: or (2) an option's name (blanks before its delimiter kept), (3) the first line of its value
#: (blanks after the delimiter left out) and (4) the indented lines right after it, each with
#: its "\n" (continuation lines), or (5) the first character of any other line that is not
#: blank or a comment: a line with no name or no delimiter, an indented line that continues
#: nothing found so far (after a header, or after a blank or comment line inside a value).
#: ``\s`` is ``str.isspace()``: the blanks ``strip()`` drops.
_ENTRY: Final = re.compile(
    r"\n(?:\[([^\n]*)"
    r"|([^\s#;=:][^=:\n]*)[=:][^\S\n]*([^\n]*)((?:\n[^\S\n]+[^\s#;][^\n]*)*)"
    r"|[^\S\n]*([^\s#;]))"
)


def read_sections(
    text: str, defaults: Mapping[str, str]
) -> list[tuple[str, dict[str, str]]] | None:
    """Each section's unexpanded items (defaults first, as ``ConfigParser.items``), or None.

    ``defaults`` are the parser's constructor defaults. Pass each result to :func:`expand`.
    """
    raw = _read_raw(text, defaults)
    if raw is None:
        return None
    file_defaults, sections = raw
    result = []
    for name, options in sections.items():
        merged = dict(file_defaults)
        merged.update(options)
        result.append((name, merged))
    return result


def expand(
    parser: configparser.ConfigParser, section: str, items: dict[str, str]
) -> dict[str, str]:
    """``items`` with ``%`` expanded as ``parser.items(section)`` expands them.

    ``parser`` lends its ``optionxform``. Raises ``configparser.InterpolationError``.
    """
    # Every expansion sees the unexpanded values, as ConfigParser.items() does.
    return {
        key: _expand(parser, section, key, value, items) if "%" in value else value
        for key, value in items.items()
    }


def _expand(
    parser: configparser.ConfigParser, section: str, key: str, value: str, items: dict[str, str]
) -> str:
    done = _expanded(value, items, parser.optionxform, 1)
    if done is None:  # an error: BasicInterpolation names it
        return _INTERPOLATION.before_get(parser, section, key, value, items)
    return done


def _expanded(
    value: str, items: Mapping[str, str], optionxform: Callable[[str], str], depth: int
) -> str | None:
    """``BasicInterpolation.before_get`` without its look-up of the value in the parser (an
    exception raised and caught, 10 us), or None for anything it refuses."""
    if depth > configparser.MAX_INTERPOLATION_DEPTH:
        return None
    if "%" not in value.replace("%%", ""):  # no reference (the default checker): no loop
        return value.replace("%%", "%")
    out = []
    rest = value
    while (percent := rest.find("%")) >= 0:
        out.append(rest[:percent])
        after = rest[percent + 1 : percent + 2]
        if after == "%":
            out.append("%")
            rest = rest[percent + 2 :]
            continue
        reference = _REFERENCE.match(rest, percent) if after == "(" else None
        if reference is None:
            return None
        found = items.get(optionxform(reference.group(1)))
        if found is None:
            return None
        if "%" in found:
            found = _expanded(found, items, optionxform, depth + 1)
            if found is None:
                return None
        out.append(found)
        rest = rest[reference.end() :]
    out.append(rest)
    return "".join(out)


def _read_raw(
    text: str, defaults: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, dict[str, str]]] | None:
    """``ConfigParser._read`` for a text it reads without error; None for any other text."""
    read = _read_entries(text, defaults)
    return _read_lines(text, defaults) if isinstance(read, _LineByLine) else read


class _LineByLine:
    """What :func:`_read_entries` gives for a text it leaves to :func:`_read_lines`."""


_LINE_BY_LINE: Final = _LineByLine()


def _read_entries(
    text: str, defaults: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, dict[str, str]]] | _LineByLine | None:
    """:func:`_read_lines` for a text whose headers and options start in the first column:
    one :data:`_ENTRY` match per header or option, not a Python step per line."""
    file_defaults = {k.lower(): str(v) for k, v in defaults.items()}
    written_defaults: dict[str, str] = {}  # [DEFAULT]'s options in the file (strict: once)
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for after_bracket, name, first, more, other in _ENTRY.findall("\n" + text):
        if name:
            if current is None:
                return None  # an option before any header
            key = name.rstrip().lower()
            if key in current:
                return None  # a duplicate option (strict)
            current[key] = _value(first, more) if more else first.rstrip()
        elif other:
            return _LINE_BY_LINE
        else:
            end = after_bracket.rfind("]")  # SECTCRE: the header ends at the last "]"
            if end < 1:
                return _LINE_BY_LINE  # no header: an option whose name starts with "[", or worse
            section = after_bracket[:end]
            if section == _DEFAULT:
                current = written_defaults
            elif section in sections:
                return None  # a duplicate section (strict)
            else:
                current = sections[section] = {}
    file_defaults.update(written_defaults)
    return file_defaults, sections


def _value(first: str, more: str) -> str:
    """A value with continuation lines: every line stripped, joined by line breaks."""
    lines = more.split("\n")
    lines[0] = first  # more starts with its "\n"
    return "\n".join(map(str.strip, lines))


def _read_lines(
    text: str, defaults: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, dict[str, str]]] | None:
    """``ConfigParser._read`` for a text it reads without error, line by line; None for any
    other text."""
    file_defaults: dict[str, list[str] | str] = {k.lower(): str(v) for k, v in defaults.items()}
    sections: dict[str, dict[str, list[str] | str]] = {}
    added: set[tuple[str, str]] = set()
    current: dict[str, list[str] | str] | None = None
    section = ""
    value_lines: list[str] | None = None  # the lines of the value being read, if any
    indent_level = 0
    # read_string() reads through io.StringIO, which splits lines at "\n" only.
    for line in text.split("\n"):
        value = line.strip()
        if not value or value[0] in "#;":
            if not value and value_lines is not None:
                value_lines.append("")  # an empty line in a value; joined away if trailing
            continue
        indent = len(line) - len(line.lstrip()) if line[0].isspace() else 0
        if value_lines is not None and indent > indent_level:
            value_lines.append(value)  # a continuation line
            continue
        indent_level, value_lines = indent, None
        header = _SECTION.match(value) if value[0] == "[" else None
        if header is not None:
            section = header.group("header")
            if section in sections:
                return None  # a duplicate section (strict)
            current = file_defaults if section == _DEFAULT else sections.setdefault(section, {})
            continue
        # What OPTCRE matches, without a regular expression (this loop runs once a line): the
        # name ends at the first "=" or ":", blanks around both parts are not theirs, and an
        # empty name is no option.
        end = value.find("=")
        colon = value.find(":", 0, end if end >= 0 else len(value))
        if colon >= 0:
            end = colon
        if end <= 0 or current is None:
            return None  # not an option line, or no header yet
        name = value[:end].rstrip().lower()
        if (section, name) in added:
            return None  # a duplicate option (strict)
        added.add((section, name))
        value_lines = current[name] = [value[end + 1 :].strip()]
    return _joined(file_defaults), {name: _joined(opts) for name, opts in sections.items()}


def _joined(options: dict[str, list[str] | str]) -> dict[str, str]:
    # A one-line value is already stripped: only values with more lines need joining.
    return {
        key: value
        if isinstance(value, str)
        else value[0]
        if len(value) == 1
        else "\n".join(value).rstrip()
        for key, value in options.items()
    }
