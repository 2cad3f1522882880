"""Announce the server as DNS-SD service ``_mandos._tcp`` over mDNS, on chosen interfaces only.

Rules of this module (REFERENCE B "Discovery"):

* The instance is ``servicename`` ("Mandos"), the TXT record is empty, the port is the listener's.
* Only the named interfaces are used; with none named, every interface that is up, multicast
  capable and not loopback (never python-zeroconf's ``InterfaceChoice.All``).
* IPv6 by default: mDNS over IPv6 and IPv4, publishing AAAA (link-local included) and A records,
  since the server listens on ``::`` and accepts both.  ``use_ipv6=False``: IPv4 and A only.
* A name taken on the network is renamed as Avahi does, "Mandos" -> "Mandos #2" -> "Mandos #3",
  because python-zeroconf's own ``allow_name_change`` would say "Mandos-2".
* Each announcer owns a host name of its own (``<host>-<instance>.local.``): reusing the machine's
  host name would fight avahi-daemon, which publishes that name with its own address set.

This module and :mod:`mandos.client.discovery` are the only importers of ``zeroconf``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

import ifaddr
from zeroconf import IPVersion, NonUniqueNameException, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from mandos.core.errors import ConfigError, ZeroconfError

if TYPE_CHECKING:  # the client imports this module: core.config would bring datetime along
    from mandos.core.config import ServerConfig

log = logging.getLogger(__name__)

SERVICE_TYPE: Final = "_mandos._tcp.local."
#: How many alternative names are tried before giving up (as the reference).
MAX_RENAMES: Final = 32768
_MAX_LABEL: Final = 63  # RFC 1035 2.3.4: a label is at most 63 octets
_IFF_UP: Final = 0x1
_IFF_LOOPBACK: Final = 0x8
_IFF_MULTICAST: Final = 0x1000
_SYSFS_NET: Final = Path("/sys/class/net")
# Linux <linux/in.h> and <linux/in6.h>; the socket module does not name them.
_IP_MULTICAST_ALL: Final = 49
_IPV6_MULTICAST_ALL: Final = 29

ZeroconfInterfaces = list[str | int]


@dataclass(frozen=True, slots=True)
class Interface:
    """A network interface and its addresses (IPv6 without scope)."""

    name: str
    index: int
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]


def alternative_name(name: str) -> str:
    """The next name to try after a collision, as Avahi: "X" -> "X #2", "X #2" -> "X #3"."""
    match = re.fullmatch(r"(.*) #([0-9]+)", name, re.DOTALL)
    base, number = (match[1], int(match[2]) + 1) if match else (name, 2)
    suffix = f" #{number}"
    while len((base + suffix).encode()) > _MAX_LABEL and base:
        base = base[:-1]
    return base + suffix


def _flags(name: str) -> int:
    try:
        return int((_SYSFS_NET / name / "flags").read_text(), 16)
    except (OSError, ValueError):
        return 0


def _usable_by_default(name: str) -> bool:
    flags = _flags(name)
    return bool(flags & _IFF_UP and flags & _IFF_MULTICAST and not flags & _IFF_LOOPBACK)


def find_interfaces(names: Sequence[str] = ()) -> tuple[list[Interface], list[str]]:
    """The interfaces called ``names`` (or all usable ones), and the names that do not exist."""
    found: dict[str, Interface] = {}
    for adapter in ifaddr.get_adapters():
        if adapter.index is None:
            continue
        v4 = tuple(ip.ip for ip in adapter.ips if isinstance(ip.ip, str))
        v6 = tuple(ip.ip[0] for ip in adapter.ips if isinstance(ip.ip, tuple))
        found[adapter.name] = Interface(adapter.name, adapter.index, v4, v6)
    if not names:
        return [i for n, i in found.items() if _usable_by_default(n)], []
    wanted = list(dict.fromkeys(names))
    return [found[n] for n in wanted if n in found], [n for n in wanted if n not in found]


def zeroconf_interfaces(
    interfaces: Sequence[Interface], use_ipv6: bool
) -> tuple[ZeroconfInterfaces, IPVersion]:
    """python-zeroconf's ``interfaces`` list and IP version for these interfaces.

    IPv4 is given as the interface's first address, IPv6 as the interface index: zeroconf joins
    ff02::fb on that index and binds its responder to the index's first IPv6 address.
    """
    v6: ZeroconfInterfaces = [i.index for i in interfaces if use_ipv6 and i.ipv6]
    v4: ZeroconfInterfaces = [i.ipv4[0] for i in interfaces if i.ipv4]
    if not v4 and not v6:
        names = ", ".join(i.name for i in interfaces) or "none"
        family = "IP" if use_ipv6 else "IPv4"
        raise ZeroconfError(f"no {family} address for Zeroconf on interfaces: {names}")
    version = IPVersion.All if v4 and v6 else IPVersion.V6Only if v6 else IPVersion.V4Only
    return v6 + v4, version


def open_zeroconf(interfaces: Sequence[Interface], use_ipv6: bool) -> AsyncZeroconf:
    """An AsyncZeroconf bound to these interfaces only; OSError becomes ZeroconfError."""
    choice, version = zeroconf_interfaces(interfaces, use_ipv6)
    try:
        zc = AsyncZeroconf(interfaces=choice, ip_version=version)
    except OSError as exc:
        raise ZeroconfError(f"cannot open mDNS sockets: {exc.strerror or exc}") from exc
    _only_joined_groups(getattr(zc.zeroconf.engine, "_listen_socket", None))
    return zc


def _only_joined_groups(sock: object) -> None:
    """Make zeroconf's wildcard listening socket deaf to groups joined by others (ip(7)).

    By default Linux hands it every 5353 multicast packet that *any* socket (avahi-daemon's, say)
    joined on *any* interface; with this it hears only the interfaces it joined itself.  The
    socket is private to zeroconf, hence the defensive lookup: without it we only lose this.
    """
    if not isinstance(sock, socket.socket):
        return
    options = [(socket.IPPROTO_IP, _IP_MULTICAST_ALL)]
    if sock.family == socket.AF_INET6:
        options.append((socket.IPPROTO_IPV6, _IPV6_MULTICAST_ALL))
    for level, option in options:
        with contextlib.suppress(OSError):
            sock.setsockopt(level, option, 0)


def _host_label(instance: str) -> str:
    raw = f"{socket.gethostname().split('.')[0]}-{instance}"
    return re.sub(r"[^A-Za-z0-9-]+", "-", raw).strip("-")[:_MAX_LABEL] or "mandos"


class ZeroconfAnnouncer:
    """Announces ``_mandos._tcp`` with an empty TXT record; use ``async with`` or start/close."""

    def __init__(
        self,
        port: int,
        *,
        name: str | None = None,
        interfaces: Sequence[str] = (),
        use_ipv6: bool = True,
        on_rename: Callable[[str], None] | None = None,
    ) -> None:
        from mandos.core.config import DEFAULT_SERVICENAME  # server side only

        self.port = port
        self._name = DEFAULT_SERVICENAME if name is None else name
        self._interface_names = tuple(interfaces)
        self._use_ipv6 = use_ipv6
        self._on_rename = on_rename
        self._zc: AsyncZeroconf | None = None
        self._info: ServiceInfo | None = None

    @property
    def name(self) -> str:
        """The instance name in use: the configured one, or its replacement after a collision."""
        return self._name

    def _service_info(self, interfaces: Sequence[Interface]) -> ServiceInfo:
        addresses = [a for i in interfaces for a in i.ipv4]
        if self._use_ipv6:
            addresses += [a for i in interfaces for a in i.ipv6]
        return ServiceInfo(
            SERVICE_TYPE,
            f"{self._name}.{SERVICE_TYPE}",
            port=self.port,
            properties=b"\x00",  # RFC 6763 6.1: an empty TXT record is one empty string
            server=f"{_host_label(self._name)}.local.",
            parsed_addresses=addresses,
        )

    async def start(self) -> None:
        """Probe for the name (renaming on collisions) and announce; returns once announced."""
        interfaces, missing = find_interfaces(self._interface_names)
        if missing:
            raise ConfigError(f"no such network interface: {', '.join(missing)}", "interface")
        self._zc = open_zeroconf(interfaces, self._use_ipv6)
        try:
            await self._register(interfaces)
        except BaseException:
            await self.close()
            raise

    async def _register(self, interfaces: Sequence[Interface]) -> None:
        assert self._zc is not None
        for _ in range(MAX_RENAMES):
            info = self._service_info(interfaces)
            try:
                announced = await self._zc.async_register_service(info)
            except NonUniqueNameException:
                log.info("Local Zeroconf service name collision.")
                self._name = alternative_name(self._name)
                log.info("Changing Zeroconf service name to %r ...", self._name)
                if self._on_rename is not None:
                    self._on_rename(self._name)
                continue
            self._info = info
            await announced
            log.debug("Zeroconf service %r announced on port %d", self._name, self.port)
            return
        raise ZeroconfError(f"no free Zeroconf service name after {MAX_RENAMES} renames")

    async def close(self) -> None:
        """Say goodbye on the network and close the sockets; safe to call twice."""
        zc, self._zc, self._info = self._zc, None, None
        if zc is not None:
            await zc.async_close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def announce_forever(
    config: ServerConfig, port: int, *, on_rename: Callable[[str], None] | None = None
) -> None:
    """Announce the server described by ``config`` until cancelled."""
    announcer = ZeroconfAnnouncer(
        port,
        name=config.servicename,
        interfaces=(config.interface,) if config.interface else (),
        use_ipv6=config.use_ipv6,
        on_rename=on_rename,
    )
    async with announcer:
        await asyncio.get_running_loop().create_future()
