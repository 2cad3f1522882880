"""core.ini_reader gives what ConfigParser gives, for every text ConfigParser reads."""

from __future__ import annotations

import configparser

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mandos.core import config_files, ini_reader
from mandos.core.config_files import CLIENT_DEFAULTS
from mandos.core.ini_reader import expand, read_sections

PIECES = st.sampled_from(
    [
        "[DEFAULT]", "[c]", "[d]", "[ e]", "[f] tail", "[]", "[a]b]", "\t[g]",
        "key = v", "Key= V ", "key: v", "k=", "=v", "a = %(b)s", "b = %(a)s", "c = %(key)s",
        "d = 100%%", "e = 50%", "f = %(host)s", "checker = ping %%(host)s", "x : y = z",
        "  continued", "\tmore", "    ", "", "# c", "; c", "  # indented comment",
        "stray", "host = h", "timeout = PT1M", "\u00a0nbsp = 1", "\r", "v = a\r",
    ]
)  # fmt: skip
TEXTS = st.lists(st.one_of(PIECES, st.text(max_size=8)), max_size=16).map("\n".join)

# Texts whose headers and options start in the first column, as mandos-keygen writes them
# (ini_reader._read_entries), with what may lie between the entries and inside the values.
BLANKS = st.sampled_from([" ", "\t", "    ", "\u00a0", "\x0c", "\r", "\x1c"])
LINE_TEXT = st.text(st.characters(blacklist_characters="\n"), max_size=6)
HEADERS = st.one_of(
    st.sampled_from(["[DEFAULT]", "[ e]", "[f] tail", "[a]b]"]),
    st.text("cdefgh", min_size=1, max_size=3).map(lambda name: f"[{name}]"),
)
NAMES = st.one_of(
    st.sampled_from(["Key", "a b", "secret", "k[", "x:y", "checker"]),
    st.text("abcdefgh_", min_size=1, max_size=3),
)
DELIMITERS = st.sampled_from(["=", " = ", ":", " : ", "= ", "\t=\t"])
CONTINUATION = st.tuples(BLANKS, LINE_TEXT).map("".join)
OPTIONS = st.tuples(NAMES, DELIMITERS, LINE_TEXT, st.lists(CONTINUATION, max_size=4)).map(
    lambda t: "\n".join([t[0] + t[1] + t[2], *t[3]])
)
BETWEEN = st.sampled_from(["", "   ", "# c", "; c", "  # c", "\r"])
ODD = st.sampled_from(["stray", "=v", "  indented = 1", ": v", "[]", "[x", "[k = v"])
FLUSH_TEXTS = st.tuples(
    HEADERS,
    st.lists(st.one_of(OPTIONS, HEADERS, BETWEEN), max_size=10),
    st.lists(ODD, max_size=1),
    st.lists(st.one_of(OPTIONS, HEADERS, BETWEEN), max_size=3),
).map(lambda t: "\n".join([t[0], *t[1], *t[2], *t[3]]))


def _configparser(text: str) -> list[tuple[str, dict[str, str]]] | str:
    parser = configparser.ConfigParser(defaults=CLIENT_DEFAULTS)
    try:
        parser.read_string(text)
        return [(s, dict(parser.items(s))) for s in parser.sections()]
    except configparser.Error as exc:
        return type(exc).__name__


def _ours(text: str) -> list[tuple[str, dict[str, str]]] | str | None:
    sections = read_sections(text, CLIENT_DEFAULTS)
    if sections is None:
        return None
    parser = configparser.ConfigParser()
    try:
        return [(name, expand(parser, name, items)) for name, items in sections]
    except configparser.Error as exc:
        return type(exc).__name__


@settings(max_examples=1500)
@given(st.one_of(TEXTS, FLUSH_TEXTS))
@example("[c]\nsecret = a\n  b\n\n  c\n\n[d]\nk = %(secret)s\n")
@example("[DEFAULT]\nhost = x\n[c]\nhost = %(name)s\nname = n\n[DEFAULT]\nname = m\n")
@example("[c]\na = %(b)s\nb = %(a)s\n")
def test_same_sections_as_configparser(text: str) -> None:
    ours, theirs = _ours(text), _configparser(text)
    if ours is None:  # ours declined: only a text ConfigParser refuses
        assert isinstance(theirs, str)
        return
    if isinstance(ours, str):  # an expansion error: ConfigParser raises it for the same text
        assert ours == theirs
        return
    assert ours == theirs


def test_declines_what_configparser_refuses() -> None:
    for text in ("k = v\n", "[c]\n[c]\n", "[c]\nk = 1\nk = 2\n", "[c]\nstray\n", "[c]\n= v\n"):
        assert read_sections(text, {}) is None


def test_clients_conf_read_by_configparser_when_the_fast_reader_declines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (
        "[DEFAULT]\ninterval = PT3M\n[foo]\nkey_id = " + "ab" * 32 + "\nhost = h%%1\n"
        "secret = aGVsbG8=\n  d29ybGQ=\nchecker = fping -q -- %%(host)s %(interval)s\n"
    )
    fast = config_files.parse_clients_conf(text)
    monkeypatch.setattr(config_files, "read_sections", lambda *_: None)
    assert config_files.parse_clients_conf(text) == fast
    assert fast[0].checker == "fping -q -- %(host)s PT3M"


def test_line_index_is_built_once_and_skips_stray_lines() -> None:
    index = config_files._LineIndex("[c]\nstray\nkey_id = x\n")
    assert index.line("c", "key_id") == 3
    assert index.line("c", "nothing") == 1  # the header's line, from the same index


@settings(max_examples=1500)
@given(FLUSH_TEXTS)
@example("[c]\nsecret =\n    aGVs\n\tbG8=\x1c\nk = v\n")
@example("[c]\nsecret = a\n\n  b\n")  # a blank line inside a value: line by line
@example("[DEFAULT]\nk = 1\n[DEFAULT]\nk = 2\n")
def test_entries_read_as_the_line_reader_does(text: str) -> None:
    entries = ini_reader._read_entries(text, CLIENT_DEFAULTS)
    if not isinstance(entries, ini_reader._LineByLine):
        assert entries == ini_reader._read_lines(text, CLIENT_DEFAULTS)


def test_keygen_sections_are_read_without_the_line_reader() -> None:
    text = (
        "[DEFAULT]\ninterval = PT3M\n\n# one client\n[foo]\nhost = foo\nkey_id = "
        + "ab" * 32
        + "\nsecret =\n    aGVs\n    bG8=\n[bar]\nsecret: x\n\ty \r\n"
    )
    entries = ini_reader._read_entries(text, CLIENT_DEFAULTS)
    assert not isinstance(entries, ini_reader._LineByLine)
    assert entries == ini_reader._read_lines(text, CLIENT_DEFAULTS)
    assert entries is not None
    assert entries[1]["foo"]["secret"] == "\naGVs\nbG8="
    assert entries[1]["bar"]["secret"] == "x\ny"


@pytest.mark.parametrize(
    "text", ["[c]\n  k = v\n", "[c]\nk = v\n\n  more\n", "[c]\n[] = v\n", "[c]\nstray\n"]
)
def test_other_texts_are_read_line_by_line(text: str) -> None:
    assert isinstance(ini_reader._read_entries(text, {}), ini_reader._LineByLine)


PERCENT_PIECES = st.sampled_from(
    ["%%", "%(a)s", "%(B)s", "%(c)s", "%(zz)s", "%", "%(", ")s", "x", ""]
)
PERCENT_TEXT = st.lists(PERCENT_PIECES, max_size=5).map("".join)


@settings(max_examples=1000)
@given(PERCENT_TEXT, st.dictionaries(st.sampled_from(["a", "b", "c"]), PERCENT_TEXT))
@example("%(a)s", {"a": "%(a)s"})  # nested too deeply
@example("%(a)s", {"a": ""})
@example("x%(b)s", {"a": "", "b": "%(a)s"})
def test_expansion_is_basic_interpolations(value: str, items: dict[str, str]) -> None:
    parser = configparser.ConfigParser()
    try:
        theirs: str | None = configparser.BasicInterpolation().before_get(
            parser, "s", "o", value, items
        )
    except configparser.InterpolationError:
        theirs = None
    assert ini_reader._expanded(value, items, parser.optionxform, 1) == theirs
