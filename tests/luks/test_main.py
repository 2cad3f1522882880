"""mandos-luks's command line: help for every command, one-line usage errors."""

from __future__ import annotations

import pytest

from mandos.luks import main

COMMANDS = ("bind", "list", "rotate", "unbind", "test")


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: mandos-luks {command} ")
    assert "--keydir" in out


def test_rotate_help_names_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    main.main(["rotate", "--help"])
    out = capsys.readouterr().out
    for option in ("--keys", "--connect", "--timeout", "--output", "--finish"):
        assert option in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "required: COMMAND"),
        (["frobnicate"], "invalid choice"),
        (["bind"], "DEVICE"),
        (["unbind", "--slot=x", "d"], "--slot"),
        (["rotate", "--timeout=PT", "d"], "is not a duration"),
        (["test", "--connect=1.2.3.4", "d"], "No colon in address"),
        (["bind", "/dev/null", "/dev/../dev/null"], "are the same device"),
    ],
)
def test_usage_errors_are_one_line(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main.main(argv) == 64
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("mandos-luks: ")
    assert needle in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("mandos-luks ")
