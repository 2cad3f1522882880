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
from mandos.core.config import (
    DEFAULT_CONFIGDIR,
    DEFAULT_SERVICENAME,
    DEFAULT_STATEDIR,
    ServerConfig,
    ServerSettings,
    merge_server_config,
)
from mandos.core.config_files import DEBUG_LEVELS, parse_debuglevel, parse_int, parse_server_conf
from mandos.core.durations import format_rfc3339, parse_duration
from mandos.core.errors import ConfigError, UsageError
from mandos.core.hostport import parse_host_port

__all__ = [
    "ServerArgs",
    "build_parser",
    "load_server_config",
    "parse_server_args",
    "validate_server_config",
]

PROG: Final = "mandos"


@dataclass(frozen=True, slots=True)
class ServerArgs(ServerSettings):
    """The command line: the settings given (None: mandos.conf or the default decides)."""

    check: bool = False

    def overrides(self) -> ServerSettings:
        """The settings given, without ``check``."""
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(ServerSettings)}
        return ServerSettings(**given)


def _argument_type(parse: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """Turn a ConfigError-raising parser into an argparse type (its message on error)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name  # argparse names the type in "invalid <name> value"
    return convert


def _number(low: int, high: int | None, name: str) -> Callable[[str], Any]:
    return _argument_type(lambda text: parse_int(text, low, high), name)


def _host_port(text: str) -> str:
    parse_host_port(text)
    return text.strip()


_DEFAULT_HANDSHAKE: Final = format_rfc3339(ServerConfig().handshake_timeout)

#: Every option but -h and -v, in the reference's order: (flags, ``add_argument`` keywords).
_OPTIONS: Final[tuple[tuple[tuple[str, ...], dict[str, Any]], ...]] = (
    (("-i", "--interface"), {
        "metavar": "IF",
        "help": "listen and announce on network interface IF only",
    }),
    (("-a", "--address"), {
        "help": "listen on this IPv6 address only (an IPv4 address as ::FFFF:a.b.c.d)",
    }),
    (("-p", "--port"), {
        "type": _number(0, 65535, "port"),
        "help": "TCP port to listen on (default: any free port, announced by Zeroconf)",
    }),
    (("--check",), {
        "action": "store_true",
        "default": False,
        "help": "accepted for compatibility: there is no built-in self-test; exit at once",
    }),
    (("--debug",), {
        "action": "store_true",
        "help": "debug mode: stay in the foreground and log everything to the terminal",
    }),
    (("--debuglevel",), {
        "metavar": "LEVEL",
        "type": _argument_type(parse_debuglevel, "debuglevel"),
        "help": f"log level, one of {', '.join(DEBUG_LEVELS)} (any case)",
    }),
    (("--priority",), {"help": "GnuTLS priority string (see gnutls_priority_init(3))"}),
    (("--servicename",), {
        "metavar": "NAME",
        "help": f"Zeroconf service instance name (default: {DEFAULT_SERVICENAME})",
    }),
    (("--configdir",), {
        "metavar": "DIR",
        "help": f"directory holding mandos.conf and clients.conf (default: {DEFAULT_CONFIGDIR})",
    }),
    (("--no-dbus",), {
        "dest": "use_dbus",
        "action": "store_false",
        "help": "do not provide the D-Bus system bus interface",
    }),
    (("--no-ipv6",), {
        "dest": "use_ipv6",
        "action": "store_false",
        "help": "use IPv4 sockets and addresses instead of IPv6",
    }),
    (("--no-restore",), {
        "dest": "restore",
        "action": "store_false",
        "help": "do not restore the state saved by the last run",
    }),
    (("--statedir",), {
        "metavar": "DIR",
        "help": f"directory to save and restore state in (default: {DEFAULT_STATEDIR})",
    }),
    (("--socket",), {
        "metavar": "FD",
        "type": _number(0, None, "socket"),
        "help": "use the listening socket on inherited file descriptor FD",
    }),
    (("--foreground",), {
        "action": "store_true",
        "help": "run in the foreground: no fork, no PID file",
    }),
    (("--no-zeroconf",), {
        "dest": "zeroconf",
        "action": "store_false",
        "help": "do not announce the service with Zeroconf (needs --port or --socket)",
    }),
    (("--handshake-timeout",), {
        "metavar": "TIME",
        "type": _argument_type(parse_duration, "duration"),
        "help": "time allowed for the version line and the TLS handshake, as an RFC 3339"
        f" duration such as PT10S (default: {_DEFAULT_HANDSHAKE})",
    }),
    (("--audit-log",), {
        "metavar": "PATH",
        "help": 'append a hash-chained JSON line for every decision to PATH ("" for none;'
        " see mandos-audit(8))",
    }),
    (("--metrics-address",), {
        "metavar": "HOST:PORT",
        "type": _argument_type(_host_port, "address"),
        "help": "serve Prometheus metrics at http://HOST:PORT/metrics (default: off)",
    }),
    (("--metrics-per-client",), {
        "action": "store_true",
        "help": "add per-client metric series (one label value per client)",
    }),
    (("--handshake-workers",), {
        "metavar": "N",
        "type": _number(0, 256, "number"),
        "help": "run the TLS handshakes' cryptography in N worker threads, for machines with"
        " more cores (default: 0, in the event loop)",
    }),
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``mandos``, with help texts fit for the man page."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Give encrypted secrets to Mandos clients that prove their identity by"
        " TLS, as long as a periodic checker says they are still up.",
        argument_default=None,
    )
    parser.add_argument(
        "-v",
        "--version",
        action="version",
        version=f"{PROG} {__version__}",
        help="show the version number and exit",
    )
    for flags, keywords in _OPTIONS:
        parser.add_argument(*flags, **keywords)
    # store_true/store_false set their opposite as the default; "not given" must stay None.
    parser.set_defaults(
        debug=None,
        use_dbus=None,
        use_ipv6=None,
        restore=None,
        foreground=None,
        zeroconf=None,
        metrics_per_client=None,
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
        ConfigError: the handshake timeout is zero (no client could ever finish).
    """
    if not config.zeroconf and config.port is None and config.socket is None:
        raise UsageError("Needs port or socket to work without Zeroconf")
    if config.handshake_timeout <= timedelta(0):
        raise ConfigError("handshake_timeout: must be longer than zero")


def load_server_config(
    conf_text: str | None, args: ServerArgs, origin: str = "mandos.conf"
) -> ServerConfig:
    """Built-in defaults, then mandos.conf (``conf_text``, None if absent), then the command line.

    Raises:
        ConfigError: mandos.conf is malformed (the message names the line).
    """
    from_file = ServerSettings() if conf_text is None else parse_server_conf(conf_text, origin)
    return merge_server_config(ServerConfig(), from_file, args.overrides())
