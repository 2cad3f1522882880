"""mandos-ctl's command line, parsed without side effects."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mandos.adapters.dbus_api import PROPERTIES
from mandos.core.errors import CtlUsageError
from mandos.ctl.args import (
    Approve,
    Command,
    DumpJSON,
    IsEnabled,
    PrintTable,
    Remove,
    SetProperty,
    SetSecret,
    ShowText,
    parse_args,
)

V = "9.9"
C = Command
P = SetProperty

PARSED = [
    ([], C((), (PrintTable(False),))),
    (["-v"], C((), (PrintTable(True),))),
    (["-j", "a"], C(("a",), (DumpJSON(),))),
    (["-e", "a", "b"], C(("a", "b"), (P("Enabled", True),))),
    (["-d", "-a"], C((), (P("Enabled", False),), all=True)),
    (["-b", "a"], C(("a",), (P("LastCheckedOK", ""),))),
    (["--start-checker", "a"], C(("a",), (P("CheckerRunning", True),))),
    (["--stop-checker", "a"], C(("a",), (P("CheckerRunning", False),))),
    (["-c", "x %%(host)s", "a"], C(("a",), (P("Checker", "x %%(host)s"),))),
    (["-t", "PT5M", "a"], C(("a",), (P("Timeout", 300000),))),
    (["--extended-timeout", "1h", "a"], C(("a",), (P("ExtendedTimeout", 3600000),))),
    (["-i", "250", "a"], C(("a",), (P("Interval", 250),))),
    (["--approval-delay", "P1W", "a"], C(("a",), (P("ApprovalDelay", 604800000),))),
    (["--approval-duration", "2s", "a"], C(("a",), (P("ApprovalDuration", 2000),))),
    (["--approve-by-default", "a"], C(("a",), (P("ApprovedByDefault", True),))),
    (["--deny-by-default", "a"], C(("a",), (P("ApprovedByDefault", False),))),
    (["-H", "h.example", "a"], C(("a",), (P("Host", "h.example"),))),
    (["-s", "/f", "a"], C(("a",), (SetSecret("/f"),))),
    (["-A", "a"], C(("a",), (Approve(True),))),
    (["-D", "a"], C(("a",), (Approve(False),))),
    (["-r", "a"], C(("a",), (Remove(),))),
    (["-r", "-D", "a"], C(("a",), (Approve(False), Remove()))),
    (["-D", "-r", "a"], C(("a",), (Approve(False), Remove()))),
    (["-V", "a"], C(("a",), (IsEnabled(),))),
    (["--debug", "a"], C(("a",), (PrintTable(False),), debug=True)),
    (["-e", "-b", "a"], C(("a",), (P("Enabled", True), P("LastCheckedOK", "")))),
]


@pytest.mark.parametrize(("argv", "want"), PARSED, ids=lambda x: repr(x))
def test_parse(argv: list[str], want: Command) -> None:
    assert parse_args(argv, V) == want


ERRORS = [
    (["-e"], "Options require clients names or --all."),
    (["-V"], "Options require clients names or --all."),
    (["-v", "-e", "a"], "--verbose can only be used alone."),
    (["-j", "-v"], "--dump-json can only be used alone."),
    (["-j", "-e", "a"], "--dump-json can only be used alone."),
    (["-a"], "--all requires an action."),
    (["-a", "-j"], "--all requires an action."),
    (["-V", "a", "b"], "--is-enabled requires exactly one client"),
    (["-r", "-e", "a"], "--remove can only be combined with --deny"),
    (["-e", "-d", "a"], "argument -d/--disable: not allowed with argument -e/--enable"),
    (["-t", "bogus", "a"], "argument -t/--timeout: 'bogus' is not a duration"),
    (["-i", "", "a"], "argument -i/--interval: '' is not a duration"),
    (["--nope"], "unrecognized arguments: --nope"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), ERRORS, ids=lambda x: repr(x))
def test_errors(argv: list[str], message: str) -> None:
    with pytest.raises(CtlUsageError) as caught:
        parse_args(argv, V)
    assert str(caught.value) == message
    assert caught.value.exit_code == 2
    assert caught.value.usage.startswith("usage: mandos-ctl [-h] [--version] [-a] [-v] [-j]")


def test_help_and_version_print_nothing_themselves(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["--version", "-e"], V) == ShowText("mandos-ctl 9.9\n")
    shown = parse_args(["-h"], V)
    assert isinstance(shown, ShowText)
    assert "  -s FILENAME, --secret FILENAME\n" in shown.text
    assert capsys.readouterr() == ("", "")


@given(st.lists(st.text(max_size=12), max_size=6))
@example(["-\n"])  # an argument with a newline: still one line
def test_any_argv_parses_or_is_a_usage_error(argv: list[str]) -> None:
    message = ""
    try:
        parse_args(argv, V)
    except CtlUsageError as exc:
        message = str(exc)
    assert "\n" not in message


@given(st.text(max_size=30))
def test_any_duration_value_is_milliseconds_or_refused(text: str) -> None:
    try:
        got = parse_args(["--timeout", text, "a"], V)
    except CtlUsageError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert message.startswith("argument -t/--timeout: ")
        return
    assert isinstance(got, Command)
    (action,) = got.actions
    assert isinstance(action, SetProperty)
    assert isinstance(action.value, int)
    assert action.value >= 0


def test_every_setter_names_a_writable_property_of_the_api() -> None:
    """Its D-Bus type comes from dbus_api.PROPERTIES, so the name must be there, writable."""
    setters = [a for _, want in PARSED for a in want.actions if isinstance(a, SetProperty)]
    assert {s.name for s in setters} >= {"Enabled", "Timeout", "Checker", "Host"}
    for setter in setters:
        assert PROPERTIES[setter.name].writable, setter
