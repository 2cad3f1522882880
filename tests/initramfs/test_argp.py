"""The argp-style parser and texts every initramfs program uses (mandos-client, plugin-runner,
the plugins)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mandos import __version__
from mandos.core.errors import UsageError
from mandos.initramfs import argp

SPECS = (
    argp.Opt("disable", "d", True, "Disable a plugin", "PLUGIN"),
    argp.Opt("plugin-dir", None, True, "Another plugin directory", "DIRECTORY"),
    argp.Opt("plugin-helper-dir", None, True, "Another helper directory", "DIRECTORY"),
    argp.Opt("debug", None, False, "Debug mode"),
    argp.Opt("delay", None, True, "Seconds", "SECONDS"),
    argp.Opt("help", "?", False, "Give this help list"),
    argp.Opt("version", "V", False, "Print program version"),
)
INFO = ("help", "version")
argvs = st.lists(
    st.sampled_from(["-d", "-dx", "-?", "-V", "-?V", "--deb", "--de", "--help", "--plugin-d=/x",
                     "--plugin", "--debug=1", "--", "-", "word", "--bogus", "-q", "--delay"]),
    max_size=6,
)  # fmt: skip


def test_conventions() -> None:
    p = argp.parse(SPECS, ["-dfoo", "-d", "bar", "--debu", "--plugin-d=/x", "--", "--debug"])
    assert p.options == (
        ("disable", "foo"),
        ("disable", "bar"),
        ("debug", None),
        ("plugin-dir", "/x"),
    )
    assert p.positionals == ("--debug",)


def test_non_options_anywhere_unless_in_order() -> None:
    assert argp.parse(SPECS, ["a", "--debug", "-", "b"]) == argp.Parsed(
        (("debug", None),), ("a", "-", "b")
    )
    assert argp.parse(SPECS, ["--debug", "cmd", "--its-option"], in_order=True) == argp.Parsed(
        (("debug", None),), ("cmd", "--its-option")
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--plugin"], "option '--plugin' is ambiguous; possibilities: '--plugin-dir' '--plugin-h"),
        (["--nope"], "unrecognized option '--nope'"),
        (["-x"], "invalid option -- 'x'"),
        (["--delay"], "option '--delay' requires an argument"),
        (["-d"], "option requires an argument -- 'd'"),
        (["--debug=yes"], "option '--debug' doesn't allow an argument"),
    ],
)
def test_errors_in_getopt_words(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        argp.parse(SPECS, argv)


@pytest.mark.parametrize(
    ("argv", "options"),
    [
        (["-V", "--bogus"], (("version", None),)),
        (["--debug", "-?V"], (("debug", None), ("help", None))),
        (["--he", "--delay"], (("help", None),)),
        (["word", "--version", "-x"], (("version", None),)),
    ],
)
def test_stop_at_ends_the_parse_where_it_stands(
    argv: list[str], options: tuple[tuple[str, None], ...]
) -> None:
    assert argp.parse(SPECS, argv, stop_at=INFO).options == options


@given(argvs)
def test_stop_at_sees_a_prefix_of_the_full_parse(argv: list[str]) -> None:
    try:
        full = argp.parse(SPECS, argv)
    except UsageError:
        return
    stopped = argp.parse(SPECS, argv, stop_at=INFO)
    assert full.options[: len(stopped.options)] == stopped.options


@given(st.lists(st.text(min_size=1).filter(lambda s: "\0" not in s), max_size=6), st.booleans())
def test_parse_raises_only_usage_error(argv: list[str], in_order: bool) -> None:
    with contextlib.suppress(UsageError):
        argp.parse(SPECS, argv, in_order=in_order, stop_at=INFO)


def test_help_is_laid_out_as_argp_does() -> None:
    text = argp.help_text("prog", "Prog -- does things", SPECS, "ARGS")
    lines = text.splitlines()
    assert lines[:3] == ["Usage: prog [OPTION...] ARGS", "Prog -- does things", ""]
    assert "  -d, --disable=PLUGIN       Disable a plugin" in lines
    assert "      --debug                Debug mode" in lines
    assert "      --plugin-helper-dir=DIRECTORY" in lines  # too long: help on the next line
    assert f"{'':29}Another helper directory" in lines
    assert text.endswith("for any corresponding short options.\n")
    flags_only = argp.help_text("prog", "x", SPECS[3:4])
    assert "Mandatory" not in flags_only


def test_usage_wraps_with_argps_indent() -> None:
    text = argp.usage_text("prog", SPECS, "ARGS")
    lines = text.splitlines()
    assert lines[0].startswith("Usage: prog [-?V] [-d PLUGIN] [--disable=PLUGIN] ")
    assert all(len(line) <= 78 for line in lines)
    assert all(line.startswith(" " * 12 + "[") or line == " " * 12 + "ARGS" for line in lines[1:])
    assert lines[-1].endswith(" ARGS")
    assert "[--plugin-helper-dir=DIRECTORY]" in text


def test_info_request_and_text() -> None:
    parsed = argp.parse(SPECS, ["--debug", "-V", "--bogus"], stop_at=argp.INFO_OPTIONS)
    assert argp.info_request(parsed) == "version"
    assert argp.info_request(argp.parse(SPECS, ["--debug", "x"])) is None
    assert argp.info_text("version", "prog", "x", SPECS) == f"prog (mandos-py) {__version__}\n"
    assert argp.info_text("usage", "prog", "x", SPECS, "A") == argp.usage_text("prog", SPECS, "A")
    assert argp.info_text("help", "prog", "x", SPECS) == argp.help_text("prog", "x", SPECS)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("65534", 65534), ("007", 7), ("", None), ("-1", None), ("²", None), ("٣", None)],
)
def test_decimal_is_ascii_digits_only(text: str, value: int | None) -> None:
    assert argp.decimal(text) == value


def test_numeric_id_bounds() -> None:
    assert argp.numeric_id("4294967294", "--userid") == 4294967294
    for bad in ("4294967295", "x", "²", ""):
        with pytest.raises(UsageError, match=f"^--userid: {bad!r} is not a numeric ID$"):
            argp.numeric_id(bad, "--userid")
