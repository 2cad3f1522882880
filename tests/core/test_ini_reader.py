"""core.ini_reader gives what ConfigParser gives, for every text ConfigParser reads."""

from __future__ import annotations

import configparser

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mandos.core import config_files
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
@given(TEXTS)
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
