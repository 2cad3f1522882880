"""The mandos command line: options, help, version, layering over mandos.conf."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mandos import __version__
from mandos.core.config import DEFAULT_PRIORITY, ServerConfig, ServerSettings
from mandos.core.errors import ConfigError, UsageError
from mandos.server.args import (
    ServerArgs,
    build_parser,
    load_server_config,
    parse_server_args,
    validate_server_config,
)

ALL_OPTIONS = [
    "-v",
    "--version",
    "-i",
    "--interface",
    "-a",
    "--address",
    "-p",
    "--port",
    "--check",
    "--debug",
    "--debuglevel",
    "--priority",
    "--servicename",
    "--configdir",
    "--no-dbus",
    "--no-ipv6",
    "--no-restore",
    "--statedir",
    "--socket",
    "--foreground",
    "--no-zeroconf",
    "--handshake-timeout",
]


def test_nothing_given_is_all_none() -> None:
    args = parse_server_args([])
    assert args == ServerArgs()
    assert args.overrides() == ServerSettings()
    assert args.check is False


def test_every_option() -> None:
    argv = [
        "-i", "eth0", "-a", "::1", "-p", "1025", "--debug", "--debuglevel", "info",
        "--priority", "NORMAL", "--servicename", "Other", "--configdir", "/c", "--no-dbus",
        "--no-ipv6", "--no-restore", "--statedir", "/s", "--socket", "3", "--foreground",
        "--no-zeroconf", "--handshake-timeout", "PT3S", "--check",
    ]  # fmt: skip
    args = parse_server_args(argv)
    assert args.check is True
    assert args.overrides() == ServerSettings(
        interface="eth0",
        address="::1",
        port=1025,
        debug=True,
        debuglevel="INFO",
        priority="NORMAL",
        servicename="Other",
        configdir="/c",
        use_dbus=False,
        use_ipv6=False,
        restore=False,
        statedir="/s",
        socket=3,
        foreground=True,
        zeroconf=False,
        handshake_timeout=timedelta(seconds=3),
    )


def test_long_forms_with_equals() -> None:
    args = parse_server_args(["--interface=br0", "--address=fe80::1", "--port=0"])
    assert (args.interface, args.address, args.port) == ("br0", "fe80::1", 0)


def test_legacy_duration_for_handshake_timeout() -> None:
    assert parse_server_args(["--handshake-timeout", "1m 30s"]).handshake_timeout == timedelta(
        seconds=90
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("-v", "--version"):
        with pytest.raises(SystemExit) as info:
            parse_server_args([flag])
        assert info.value.code == 0
        assert capsys.readouterr().out == f"mandos {__version__}\n"


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_server_args(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mandos ")
    for option in ALL_OPTIONS:
        assert option in out
    assert build_parser().prog == "mandos"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-p", "http"], "argument -p/--port: 'http' is not a number"),
        (["-p", "65536"], "argument -p/--port: '65536' is out of range (0 to 65535)"),
        (["-p", "-1"], "argument -p/--port: '-1' is out of range"),
        (["--port=-1"], "argument -p/--port: '-1' is out of range"),
        (["--socket", "x"], "argument --socket: 'x' is not a number"),
        (["--socket", "-3"], "argument --socket: '-3' is out of range (0)"),
        (["--debuglevel", "loud"], "argument --debuglevel: 'loud' is not a debug level"),
        (["--handshake-timeout", "soon"], "argument --handshake-timeout: 'soon' is not a dur"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["extra"], "unrecognized arguments: extra"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_server_args(argv)
    assert info.value.code == 2
    assert f"mandos: error: {message}" in capsys.readouterr().err


def test_defaults_without_a_file() -> None:
    assert load_server_config(None, parse_server_args([])) == ServerConfig()


def test_file_over_defaults_and_command_line_over_file() -> None:
    conf = "[DEFAULT]\nport = 1025\nservicename = FromFile\nuse_dbus = no\ndebug = yes\n"
    config = load_server_config(conf, parse_server_args(["--port", "2000", "--no-ipv6"]))
    assert config.port == 2000  # command line wins
    assert config.servicename == "FromFile"  # file over default
    assert config.use_dbus is False
    assert config.debug is True
    assert config.use_ipv6 is False
    assert config.priority == DEFAULT_PRIORITY


def test_a_flag_not_given_does_not_override_the_file() -> None:
    # "--no-dbus" absent must leave "use_dbus = no" from the file alone, and vice versa.
    config = load_server_config("[DEFAULT]\nuse_dbus = no\nforeground = 1\n", ServerArgs())
    assert (config.use_dbus, config.foreground) == (False, True)


def test_configdir_only_from_the_command_line() -> None:
    conf = "[DEFAULT]\nconfigdir = /from/file\n"
    assert load_server_config(conf, ServerArgs()).configdir == "/etc/mandos"
    assert load_server_config(conf, ServerArgs(configdir="/cli")).configdir == "/cli"


def test_bad_file_is_a_config_error_with_its_origin() -> None:
    with pytest.raises(ConfigError, match=r"^/etc/mandos/mandos.conf:2: port: 'x' is not a num"):
        load_server_config("[DEFAULT]\nport = x\n", ServerArgs(), "/etc/mandos/mandos.conf")


def test_no_zeroconf_needs_port_or_socket() -> None:
    with pytest.raises(UsageError, match=r"^Needs port or socket to work without Zeroconf$"):
        validate_server_config(load_server_config(None, parse_server_args(["--no-zeroconf"])))
    with pytest.raises(UsageError):
        validate_server_config(load_server_config("[DEFAULT]\nzeroconf = off\n", ServerArgs()))
    for argv in (["--no-zeroconf", "-p", "0"], ["--no-zeroconf", "--socket", "0"]):
        validate_server_config(load_server_config(None, parse_server_args(argv)))
    validate_server_config(load_server_config("[DEFAULT]\nzeroconf=0\nport=9\n", ServerArgs()))
    validate_server_config(ServerConfig())


def test_help_names_the_built_in_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_server_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    defaults = ServerConfig()
    for value in (defaults.configdir, defaults.statedir, defaults.servicename, "PT10S"):
        assert f"(default: {value})" in out


@pytest.mark.parametrize("text", ["x", "70000", "-1"])
def test_the_file_and_the_command_line_read_numbers_alike(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as from_file:
        load_server_config(f"[DEFAULT]\nport = {text}\n", ServerArgs(), "m.conf")
    with pytest.raises(SystemExit):
        parse_server_args([f"--port={text}"])
    problem = str(from_file.value).removeprefix("m.conf:2: port: ")
    assert f"argument -p/--port: {problem}\n" in capsys.readouterr().err
