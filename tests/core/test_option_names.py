from __future__ import annotations

import configparser

from hypothesis import given
from hypothesis import strategies as st

from mandos.core.option_names import (
    CLIENT_OPTIONS,
    did_you_mean,
    edit_distance,
    maybe_suspect,
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
    "[e] = f", "Approved_By_Defaulttt = 1", "approved_by_defaultttt = 2", "\u0130" * 21 + " = 3",
    "    hQIMA/b+hQIMA/b+hQIMA/b+hQIMA==",
]  # fmt: skip
LINES = st.lists(
    st.one_of(
        st.sampled_from(PIECES), st.text(alphabet=" \t\r\u00a0=:[]#;kKeyidho\n", max_size=10)
    ),
    max_size=12,
).map("\n".join)


@given(LINES)
def test_maybe_suspect_holds_every_name_configparser_reads_that_may_be_a_typo(text: str) -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return
    written = set(parser.defaults()).union(*(parser.options(s) for s in parser.sections()))
    longest = max(map(len, CLIENT_OPTIONS)) + 2  # two edits: anything longer is no typo
    suspects = {name for name in written - CLIENT_OPTIONS if len(name) <= longest}
    assert suspects <= maybe_suspect(text)


def _did_you_mean_everywhere(name: str) -> str | None:
    """did_you_mean as it was: every known name's distance computed."""
    if name in CLIENT_OPTIONS:
        return None
    best = min(CLIENT_OPTIONS, key=lambda k: (edit_distance(name, k), k))
    distance = edit_distance(name, best)
    return best if 0 < distance <= (2 if len(best) >= 6 else 1) else None


NEAR_NAMES = st.one_of(
    st.text("abcdeik_lmnoprstuvxy", max_size=22),
    st.sampled_from(sorted(CLIENT_OPTIONS)).flatmap(
        lambda k: st.tuples(
            st.integers(0, len(k)), st.text("ae_x", max_size=3), st.integers(0, 3)
        ).map(lambda t: k[: t[0]] + t[1] + k[t[0] + t[2] :])
    ),
)


@given(NEAR_NAMES)
def test_did_you_mean_looks_only_at_names_of_a_near_length(name: str) -> None:
    assert did_you_mean(name) == _did_you_mean_everywhere(name)


def test_a_keygen_secret_is_no_typo() -> None:
    body = "\n".join(["    " + "hQIMA" * 12 + "a/b+"] * 3 + ["    " + "QUJD" * 10 + "=="])
    assert misspelled_options(f"[c]\nhost = c\nsecret =\n{body}\n" * 3) == []
