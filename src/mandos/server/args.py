"""The ``mandos`` command line (REFERENCE A2): pure argparse, and the layering of settings.

Every option the reference takes is here, with the same spelling, plus ``--handshake-timeout``.
An option not given is None in :class:`ServerArgs`, so that mandos.conf, then the built-in
defaults, decide. ``--check`` is accepted for compatibility: the reference ran its self-test;
we have none at run time (the test suite is pytest), so ``main`` exits 0 at once.
Bad values end in argparse's ``mandos: error: ...`` and exit status 2, as in the reference.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from mandos import __version__
from mandos.core.config import ServerConfig, merge_server_config
from mandos.core.config_files import DEBUG_LEVELS, parse_debuglevel, parse_server_conf
from mandos.core.durations import parse_duration
from mandos.core.errors import ConfigError, UsageError

__all__ = [
    "ServerArgs",
    "build_parser",
    "load_server_config",
    "parse_server_args",
    "validate_server_config",
]

PROG: Final = "mandos"


@dataclass(frozen=True, slots=True)
class ServerArgs:
    """The command line: None means "not given" (mandos.conf or the default decides)."""

    interface: str | None = None
    address: str | None = None
    port: int | None = None
    debug: bool | None = None
    debuglevel: str | None = None
    priority: str | None = None
    servicename: str | None = None
    configdir: str | None = None
    use_dbus: bool | None = None
    use_ipv6: bool | None = None
    restore: bool | None = None
    statedir: str | None = None
    socket: int | None = None
    foreground: bool | None = None
    zeroconf: bool | None = None
    handshake_timeout: timedelta | None = None
    check: bool = False

    def overrides(self) -> dict[str, Any]:
        """The settings given, as :class:`ServerConfig` fields (``check`` left out)."""
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del given["check"]
        return {name: value for name, value in given.items() if value is not None}


def _argument_type(parse: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """Turn a ConfigError-raising parser into an argparse type (its message on error)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name  # argparse names the type in "invalid <name> value"
    return convert


def _number(low: int, high: int | None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{text!r} is not a number") from None
        if value < low or (high is not None and value > high):
            raise ConfigError(f"{text!r} is out of range")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``mandos``, with help texts fit for the man page."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Give encrypted secrets to Mandos clients that prove their identity by"
        " TLS, as long as a periodic checker says they are still up.",
        argument_default=None,
    )
    add = parser.add_argument
    add(
        "-v",
        "--version",
        action="version",
        version=f"{PROG} {__version__}",
        help="show the version number and exit",
    )
    add("-i", "--interface", metavar="IF", help="listen and announce on network interface IF only")
    add(
        "-a",
        "--address",
        help="listen on this IPv6 address only (an IPv4 address as ::FFFF:a.b.c.d)",
    )
    add(
        "-p",
        "--port",
        type=_argument_type(_number(0, 65535), "port"),
        help="TCP port to listen on (default: any free port, announced by Zeroconf)",
    )
    add(
        "--check",
        action="store_true",
        default=False,
        help="accepted for compatibility: there is no built-in self-test; exit at once",
    )
    add(
        "--debug",
        action="store_true",
        help="debug mode: stay in the foreground and log everything to the terminal",
    )
    add(
        "--debuglevel",
        metavar="LEVEL",
        type=_argument_type(parse_debuglevel, "debuglevel"),
        help=f"log level, one of {', '.join(DEBUG_LEVELS)} (any case)",
    )
    add("--priority", help="GnuTLS priority string (see gnutls_priority_init(3))")
    add("--servicename", metavar="NAME", help="Zeroconf service instance name (default: Mandos)")
    add(
        "--configdir",
        metavar="DIR",
        help="directory holding mandos.conf and clients.conf (default: /etc/mandos)",
    )
    add(
        "--no-dbus",
        dest="use_dbus",
        action="store_false",
        help="do not provide the D-Bus system bus interface",
    )
    add(
        "--no-ipv6",
        dest="use_ipv6",
        action="store_false",
        help="use IPv4 sockets and addresses instead of IPv6",
    )
    add(
        "--no-restore",
        dest="restore",
        action="store_false",
        help="do not restore the state saved by the last run",
    )
    add(
        "--statedir",
        metavar="DIR",
        help="directory to save and restore state in (default: /var/lib/mandos)",
    )
    add(
        "--socket",
        metavar="FD",
        type=_argument_type(_number(0, None), "socket"),
        help="use the listening socket on inherited file descriptor FD",
    )
    add("--foreground", action="store_true", help="run in the foreground: no fork, no PID file")
    add(
        "--no-zeroconf",
        dest="zeroconf",
        action="store_false",
        help="do not announce the service with Zeroconf (needs --port or --socket)",
    )
    add(
        "--handshake-timeout",
        metavar="TIME",
        type=_argument_type(parse_duration, "duration"),
        help="time allowed for the version line and the TLS handshake, as an RFC 3339"
        " duration such as PT10S (default: PT10S)",
    )
    # store_true/store_false set their opposite as the default; "not given" must stay None.
    parser.set_defaults(
        debug=None, use_dbus=None, use_ipv6=None, restore=None, foreground=None, zeroconf=None
    )
    return parser


def parse_server_args(argv: Sequence[str]) -> ServerArgs:
    """Parse ``mandos``'s arguments (without the program name).

    Raises:
        SystemExit: as argparse does: 0 after ``--help``/``--version``, 2 on a bad argument.
    """
    namespace = build_parser().parse_args(list(argv))
    return ServerArgs(**vars(namespace))


def validate_server_config(config: ServerConfig) -> None:
    """Refuse settings that cannot work together (checked after layering, as the reference).

    Raises:
        UsageError: Zeroconf is off, and neither a port nor a socket says where to listen.
    """
    if not config.zeroconf and config.port is None and config.socket is None:
        raise UsageError("Needs port or socket to work without Zeroconf")


def load_server_config(
    conf_text: str | None, args: ServerArgs, origin: str = "mandos.conf"
) -> ServerConfig:
    """Built-in defaults, then mandos.conf (``conf_text``, None if absent), then the command line.

    Raises:
        ConfigError: mandos.conf is malformed (the message names the line).
    """
    config = ServerConfig()
    if conf_text is not None:
        config = merge_server_config(config, parse_server_conf(conf_text, origin))
    return merge_server_config(config, args.overrides())
