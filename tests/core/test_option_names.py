from __future__ import annotations

import configparser

from hypothesis import given
from hypothesis import strategies as st

from mandos.core.option_names import (
    CLIENT_OPTIONS,
    did_you_mean,
    edit_distance,
    maybe_written,
    misspelled_options,
)


def test_edit_distance() -> None:
    assert edit_distance("interval", "interval") == 0
    assert edit_distance("intervall", "interval") == 1
    assert edit_distance("fingreprint", "fingerprint") == 1  # a swap is one edit
    assert edit_distance("keyid", "key_id") == 1
    assert edit_distance("", "host") == 4


def test_did_you_mean() -> None:
    assert did_you_mean("intervall") == "interval"
    assert did_you_mean("fingreprint") == "fingerprint"
    assert did_you_mean("keyid") == "key_id"
    assert did_you_mean("approval_dealy") == "approval_delay"
    assert did_you_mean("timout") == "timeout"
    assert did_you_mean("interval") is None  # known
    assert did_you_mean("domain") is None  # a custom key for %(domain)s expansions
    assert did_you_mean("ho") is None  # two edits from a four-letter name: too far to guess
    assert did_you_mean("hots") == "host"


def test_misspelled_options_name_file_and_line() -> None:
    text = (
        "[DEFAULT]\n"
        "intervall = PT1M\n"
        "domain = example.org\n"
        "[web1]\n"
        "keyid = AB\n"
        "secret =\n"
        "    hQIMA\n"
        "host = web1.%(domain)s\n"
        "[web2]\n"
        "Fingreprint: 00\n"
    )
    assert misspelled_options(text, "/etc/mandos/clients.conf") == [
        "/etc/mandos/clients.conf:2: unknown option 'intervall'; did you mean 'interval'?",
        "/etc/mandos/clients.conf:5: unknown option 'keyid'; did you mean 'key_id'?",
        "/etc/mandos/clients.conf:10: unknown option 'fingreprint'; did you mean 'fingerprint'?",
    ]


def test_a_broken_file_is_left_to_the_parser() -> None:
    assert misspelled_options("intervall = 1\n") == []


@given(st.text())
def test_never_crashes(text: str) -> None:
    for warning in misspelled_options(text):
        assert "did you mean" in warning


@given(st.sampled_from(sorted(CLIENT_OPTIONS)))
def test_known_names_are_never_suspects(name: str) -> None:
    assert did_you_mean(name) is None


PIECES = [
    "[c]", "[DEFAULT]", "  [d]", "Keyid = 1", " intervall: 2", "\tho=3", "a : b = c", "= v",
    ": v", "x", "  cont = inued", "# keyid = 1", "; hots = 2", "\u00a0K\u00a0= 1", "k\r= 1", "",
    "[e] = f",
]  # fmt: skip
LINES = st.lists(
    st.one_of(
        st.sampled_from(PIECES), st.text(alphabet=" \t\r\u00a0=:[]#;kKeyidho\n", max_size=10)
    ),
    max_size=12,
).map("\n".join)


@given(LINES)
def test_maybe_written_holds_every_name_configparser_reads(text: str) -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return
    written = set(parser.defaults()).union(*(parser.options(s) for s in parser.sections()))
    assert written <= maybe_written(text)
