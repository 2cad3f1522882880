"""mandos-client's command line, parsed the way argp does, into a frozen ``ClientOptions``.

Rules of this module (mandos-client(8mandos), REFERENCE A11):
1. Pure: no sockets, no files, no environment. ``parse_args`` either returns options, returns
   an ``Info`` request (--help, --usage, --version), or raises ``UsageError``.
2. argp conventions (``mandos.initramfs.argp``): ``--opt=VAL`` or ``--opt VAL``, unambiguous
   prefixes of long options, ``-cVAL`` or ``-c VAL``, clustered short flags (``-?V``), ``--``
   ends the options; --help, --usage and --version act where they stand, and no operands are
   accepted ("Too many arguments").
3. ``--connect`` may be given several times (every server is tried, raced: client/race.py);
   each splits at the LAST colon; ``[v6]`` brackets are accepted; a colon in the address
   means IPv6; ``fe80::1%eth0`` keeps its scope. Only numeric addresses, as the reference.
"""

from __future__ import annotations

import math
import os.path

from mandos import __version__
from mandos.core.errors import UsageError
from mandos.core.frozen import Frozen
from mandos.initramfs.argp import INFO_OPTIONS, Opt, decimal, info_request, parse
from mandos.initramfs.argp import help_text as argp_help
from mandos.initramfs.argp import usage_text as argp_usage

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:  # collections.abc imports collections (~0.3 MiB of the client's RSS)
    from collections.abc import Callable, Sequence
    from typing import ClassVar, Final

PROG: Final = "mandos-client"
VERSION: Final = "1.8.16"
CONF_DIR: Final = "/conf/conf.d/mandos"
DEFAULT_PRIORITY: Final = (
    "SECURE128:!CTYPE-X.509:+CTYPE-RAWPK:!RSA:!VERS-ALL:+VERS-TLS1.3:%PROFILE_ULTRA"
)
DEFAULT_HOOK_DIR: Final = "/lib/mandos/network-hooks.d"
#: Where the admin keeps the hooks; the initramfs hook copies them to DEFAULT_HOOK_DIR.
INSTALLED_HOOK_DIR: Final = "/etc/mandos/network-hooks.d"
DEFAULT_DELAY: Final = 2.5
DEFAULT_RETRY: Final = 10.0
#: Seconds for one server's TCP connect plus TLS handshake (client/race.py); a server that
#: drops packets or accepts and stays silent costs at most this.
DEFAULT_DEADLINE: Final = 5.0
#: The interface name that stops the bringing up of the names listed after it.
NONE_INTERFACE: Final = "none"
_DECIMAL: Final = frozenset("0123456789")


class Info(Frozen):  # not an enum: enum (with functools, collections) is ~0.9 MiB of RSS
    """An informational request that ends the program before it does anything: one of the
    three constants below."""

    __slots__ = ("name",)
    name: str
    HELP: ClassVar[Info]
    USAGE: ClassVar[Info]
    VERSION: ClassVar[Info]

    def __init__(self, name: str) -> None:
        self._init(name=name)


Info.HELP = Info("help")
Info.USAGE = Info("usage")
Info.VERSION = Info("version")
_INFO: Final = {info.name: info for info in (Info.HELP, Info.USAGE, Info.VERSION)}


class ConnectTarget(Frozen):  # not a dataclass: dataclasses costs ~1.2 MiB of RSS
    """A server given with --connect: a numeric address, a port and, for link-local, a scope."""

    __slots__ = ("host", "port", "ipv6", "scope")  # noqa: RUF023 - as __init__
    host: str
    port: int
    ipv6: bool
    scope: str | None  # interface name or number, for IPv6 link-local addresses

    def __init__(self, host: str, port: int, ipv6: bool, scope: str | None = None) -> None:
        self._init(host=host, port=port, ipv6=ipv6, scope=scope)

    @property
    def link_local(self) -> bool:
        """True for fe80::/10, which needs an interface to be reachable."""
        import ipaddress

        return self.ipv6 and ipaddress.IPv6Address(self.host).is_link_local


class ClientOptions(Frozen):
    """Everything mandos-client was told on its command line, with the reference's defaults."""

    __slots__ = (  # noqa: RUF023 - as __init__
        "connect",
        "connect_raw",
        "connects",
        "interface_args",
        "pubkey",
        "seckey",
        "tls_pubkey",
        "tls_privkey",
        "priority",
        "dh_bits",
        "dh_params",
        "delay",
        "retry",
        "deadline",
        "network_hook_dir",
        "debug",
    )
    connect: ConnectTarget | None  # the first --connect
    connect_raw: str | None  # as given (several joined by ","), for the hooks' CONNECT
    connects: tuple[ConnectTarget, ...]  # every --connect, in order
    interface_args: tuple[str, ...]  # every name given, "none" included, in order
    pubkey: str
    seckey: str
    tls_pubkey: str
    tls_privkey: str
    priority: str
    dh_bits: int | None
    dh_params: str | None
    delay: float
    retry: float
    deadline: float
    network_hook_dir: str
    debug: bool

    def __init__(
        self,
        *,
        connect: ConnectTarget | None = None,
        connect_raw: str | None = None,
        connects: tuple[ConnectTarget, ...] = (),
        interface_args: tuple[str, ...] = (),
        pubkey: str = f"{CONF_DIR}/pubkey.txt",
        seckey: str = f"{CONF_DIR}/seckey.txt",
        tls_pubkey: str = f"{CONF_DIR}/tls-pubkey.pem",
        tls_privkey: str = f"{CONF_DIR}/tls-privkey.pem",
        priority: str = DEFAULT_PRIORITY,
        dh_bits: int | None = None,
        dh_params: str | None = None,
        delay: float = DEFAULT_DELAY,
        retry: float = DEFAULT_RETRY,
        deadline: float = DEFAULT_DEADLINE,
        network_hook_dir: str = DEFAULT_HOOK_DIR,
        debug: bool = False,
    ) -> None:
        self._init(
            connect=connect,
            connect_raw=connect_raw,
            connects=connects,
            interface_args=interface_args,
            pubkey=pubkey,
            seckey=seckey,
            tls_pubkey=tls_pubkey,
            tls_privkey=tls_privkey,
            priority=priority,
            dh_bits=dh_bits,
            dh_params=dh_params,
            delay=delay,
            retry=retry,
            deadline=deadline,
            network_hook_dir=network_hook_dir,
            debug=debug,
        )

    @property
    def interfaces(self) -> tuple[str, ...]:
        """The interfaces named on the command line, without "none"."""
        return tuple(n for n in self.interface_args if n != NONE_INTERFACE)

    @property
    def bring_up(self) -> tuple[str, ...]:
        """The named interfaces that may be brought up: those listed before "none"."""
        if NONE_INTERFACE in self.interface_args:
            return self.interface_args[: self.interface_args.index(NONE_INTERFACE)]
        return self.interface_args

    @property
    def auto_interfaces(self) -> bool:
        """True when the interfaces are chosen automatically (no name was given)."""
        return not self.interfaces

    @property
    def auto_bring_up(self) -> bool:
        """True when automatically chosen interfaces may also be brought up."""
        return not self.interface_args

    @property
    def device(self) -> str:
        """The comma-joined --interface list, as the hooks' DEVICE variable."""
        return ",".join(self.interface_args)


SUMMARY: Final = "Mandos client -- Get and decrypt passwords from a server"
OPTIONS: Final = (
    Opt("connect", "c", True, "Connect directly to a Mandos server (repeatable)", "ADDRESS:PORT"),
    Opt("interface", "i", True, "Network interface that will be used to search for servers",
        "NAME"),
    Opt("priority", None, True, "GnuTLS priority string for the TLS handshake", "STRING"),
    Opt("pubkey", "p", True, "OpenPGP public key file base name", "FILE"),
    Opt("seckey", "s", True, "OpenPGP secret key file base name", "FILE"),
    Opt("tls-privkey", "t", True, "TLS private key file base name", "FILE"),
    Opt("tls-pubkey", "T", True, "TLS public key file base name", "FILE"),
    Opt("delay", None, True, "Maximum delay to wait for interface startup", "SECONDS"),
    Opt("dh-bits", None, True, "Bit length of the Diffie-Hellman prime number", "BITS"),
    Opt("dh-params", None, True, "PEM-encoded PKCS#3 file of Diffie-Hellman parameters", "FILE"),
    Opt("network-hook-dir", None, True, "Directory where network hooks are located", "DIR"),
    Opt("retry", None, True, "Retry interval used when denied by the Mandos server", "SECONDS"),
    Opt("deadline", None, True, "Time limit for each server's connect and TLS handshake",
        "SECONDS"),
    Opt("debug", None, False, "Debug mode"),
    Opt("help", "?", False, "Give this help list"),
    Opt("usage", None, False, "Give a short usage message"),
    Opt("version", "V", False, "Print program version"),
)  # fmt: skip


def _seconds(raw: str, what: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"Bad {what}") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"Bad {what}")
    return value


def _deadline(raw: str) -> float:
    if not (value := _seconds(raw, "deadline")):
        raise UsageError("Bad deadline")
    return value


def _dh_bits(raw: str) -> int:
    try:
        value = int(raw, 10)
    except ValueError:
        raise UsageError("Bad number of DH bits") from None
    if value < 0:
        raise UsageError("Bad number of DH bits")
    return value


def is_ipv4(address: str) -> bool:
    """True for what ipaddress.IPv4Address accepts: four decimal octets up to 255, no leading
    zeros (without importing ipaddress on the --connect boot path)."""
    octets = address.split(".")
    return len(octets) == 4 and all(
        0 < len(o) <= 3 and set(o) <= _DECIMAL and (o == "0" or o[0] != "0") and int(o) <= 255
        for o in octets
    )


def parse_connect(raw: str, interfaces: Sequence[str] = ()) -> ConnectTarget:
    """Split ``ADDRESS:PORT`` at the last colon; a lone --interface scopes a link-local address."""
    address, colon, port_text = raw.rpartition(":")
    if not colon:
        raise UsageError("No colon in address")
    port = decimal(port_text)
    if port is None or not 0 < port <= 65535:
        raise UsageError("Bad port number")
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    if ":" not in address:
        if not is_ipv4(address):
            raise UsageError(f"Bad address: {address}")
        return ConnectTarget(address, port, ipv6=False)
    import ipaddress  # here: an IPv4 --connect does without it (~0.3 MiB of RSS)

    host, percent, scope = address.partition("%")
    try:
        parsed = ipaddress.IPv6Address(host)
    except ValueError:
        raise UsageError(f"Bad address: {address}") from None
    if percent and not scope:
        raise UsageError(f"Bad address: {address}")
    if not percent and parsed.is_link_local:
        named = [n for n in interfaces if n != NONE_INTERFACE]
        if len(named) != 1:
            raise UsageError(
                f"Link-local address {host} needs an interface: use {host}%NAME or one --interface"
            )
        scope = named[0]
    return ConnectTarget(str(parsed), port, ipv6=True, scope=scope or None)


def parse_args(argv: Sequence[str]) -> ClientOptions | Info:
    """Parse mandos-client's arguments (without the program name)."""
    parsed = parse(OPTIONS, argv, stop_at=INFO_OPTIONS)
    if (request := info_request(parsed)) is not None:
        return _INFO[request]
    if parsed.positionals:
        raise UsageError("Too many arguments")
    values: dict[str, object] = {}
    interfaces: list[str] = []
    connect_raws: list[str] = []
    for name, value in parsed.options:
        match name, value:
            case "debug", _:
                values["debug"] = True
            case "interface", str(v):
                interfaces.extend(n for n in v.split(",") if n)
            case "connect", str(v):
                connect_raws.append(v)
            case "delay", str(v):
                values["delay"] = _seconds(v, "delay")
            case "retry", str(v):
                values["retry"] = _seconds(v, "retry interval")
            case "deadline", str(v):
                values["deadline"] = _deadline(v)
            case "dh-bits", str(v):
                values["dh_bits"] = _dh_bits(v)
            case _, str(v):
                values[name.replace("-", "_")] = v
            case _:  # pragma: no cover - every flag without a value is handled above
                raise AssertionError(name)
    connects = tuple(parse_connect(raw, interfaces) for raw in connect_raws)
    return ClientOptions(
        connect=connects[0] if connects else None,
        connect_raw=",".join(connect_raws) if connect_raws else None,
        connects=connects,
        interface_args=tuple(interfaces),
        **values,  # type: ignore[arg-type]
    )


def usage_text() -> str:
    """The short --usage message."""
    return argp_usage(PROG, OPTIONS)


def help_text() -> str:
    """The --help message, laid out like argp's."""
    return argp_help(PROG, SUMMARY, OPTIONS)


def version_text() -> str:
    """The --version message."""
    return f"{PROG} {__version__} (compatible with Mandos {VERSION})\n"


def resolve_hook_dir(
    opts: ClientOptions, isdir: Callable[[str], bool] = os.path.isdir
) -> ClientOptions:
    """Outside the initramfs (no DEFAULT_HOOK_DIR), the default hooks are INSTALLED_HOOK_DIR's."""
    if (
        opts.network_hook_dir == DEFAULT_HOOK_DIR
        and not isdir(DEFAULT_HOOK_DIR)
        and isdir(INSTALLED_HOOK_DIR)
    ):
        return opts._replace(network_hook_dir=INSTALLED_HOOK_DIR)
    return opts
