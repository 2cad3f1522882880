"""Find Mandos servers by browsing DNS-SD ``_mandos._tcp`` over mDNS (REFERENCE A11, B).

Rules of this module:

* Browse only the named interfaces (or, with none named, every interface that is up,
  multicast capable and not loopback); names that do not exist are dropped with a warning.
* Every resolved address of every server is reported once: IPv4 and IPv6, global and
  link-local.  A link-local IPv6 address keeps the index of the interface it was heard on, since
  a client in an initramfs usually has nothing else (REFERENCE B "Addressing").
* Servers that appear later are reported too; browsing goes on until the caller stops it.
* TXT records are ignored, as the reference client does.

The ``--connect`` path never imports this module, so ``zeroconf`` is loaded only when needed.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, NoReturn, Self

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from mandos.adapters.zeroconf_service import SERVICE_TYPE, find_interfaces, open_zeroconf

log = logging.getLogger(__name__)

#: How long one resolution (SRV, TXT, A/AAAA) may take before it is retried later.
RESOLVE_TIMEOUT: Final = 3.0
#: When a server was seen but could not be resolved, ask again after this many seconds.
RESOLVE_RETRY: Final = 10.0


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """Where a server listens: an address literal (no scope), a port, and the scope if needed."""

    host: str
    port: int
    ifindex: int | None = None  # set for link-local IPv6: the interface to connect through
    name: str = field(default="", compare=False)  # the DNS-SD instance name, for log lines

    @property
    def family(self) -> socket.AddressFamily:
        """AF_INET6 for an IPv6 literal, else AF_INET."""
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def __str__(self) -> str:
        if self.family is socket.AF_INET:
            return f"{self.host}:{self.port}"
        scope = f"%{self.ifindex}" if self.ifindex is not None else ""
        return f"[{self.host}{scope}]:{self.port}"


def connect_args(addr: ServerAddress) -> tuple[str, int] | tuple[str, int, int, int]:
    """The socket address for ``socket(addr.family).connect()``; IPv6 carries the scope ID."""
    if addr.family is socket.AF_INET:
        return (addr.host, addr.port)
    return (addr.host, addr.port, 0, addr.ifindex or 0)


def server_addresses(
    info: AsyncServiceInfo, use_ipv6: bool, ifindexes: Sequence[int]
) -> list[ServerAddress]:
    """The addresses of one resolved service, link-local ones scoped to one of ``ifindexes``."""
    assert info.port is not None
    instance = info.name.removesuffix(f".{SERVICE_TYPE}")
    version = IPVersion.All if use_ipv6 else IPVersion.V4Only
    found: list[ServerAddress] = []
    for text in info.parsed_scoped_addresses(version):
        ip = ipaddress.ip_address(text)
        ifindex: int | None = None
        if isinstance(ip, ipaddress.IPv6Address) and ip.is_link_local:
            scope = ip.scope_id
            if scope is not None and scope.isdigit():
                ifindex = int(scope)
            elif len(ifindexes) == 1:
                ifindex = ifindexes[0]  # heard over IPv4: only one interface it can be on
            if ifindex not in ifindexes:
                log.debug("Ignoring %s of %r: not on a browsed interface", text, instance)
                continue
        host = str(ip).split("%", 1)[0]
        found.append(ServerAddress(host, info.port, ifindex, instance))
    return found


class ServerDiscovery:
    """Browses for Mandos servers: ``async with ServerDiscovery(...) as d: async for a in d``."""

    def __init__(
        self,
        interfaces: Sequence[str] | None = None,
        *,
        use_ipv6: bool = True,
        resolve_timeout: float = RESOLVE_TIMEOUT,
        resolve_retry: float = RESOLVE_RETRY,
    ) -> None:
        self._interface_names = tuple(interfaces or ())
        self._use_ipv6 = use_ipv6
        self._resolve_timeout = resolve_timeout
        self._resolve_retry = resolve_retry
        self._ifindexes: tuple[int, ...] = ()
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._names: asyncio.Queue[str] = asyncio.Queue()
        self._ready: collections.deque[ServerAddress] = collections.deque()
        self._seen: set[ServerAddress] = set()
        self._retries: set[asyncio.TimerHandle] = set()

    async def __aenter__(self) -> Self:
        interfaces, missing = find_interfaces(self._interface_names)
        for name in missing:
            log.warning("Not using nonexisting interface %r", name)
        self._ifindexes = tuple(i.index for i in interfaces)
        self._zc = open_zeroconf(interfaces, self._use_ipv6)
        try:
            self._browser = AsyncServiceBrowser(
                self._zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change]
            )
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop browsing and close the sockets; safe to call twice."""
        for handle in self._retries:
            handle.cancel()
        self._retries.clear()
        browser, self._browser = self._browser, None
        if browser is not None:
            await browser.async_cancel()
        zc, self._zc = self._zc, None
        if zc is not None:
            await zc.async_close()

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        # Runs in the event loop (AsyncZeroconf attaches to the running loop).
        if state_change is not ServiceStateChange.Removed:
            self._names.put_nowait(name)

    def _retry_later(self, name: str) -> None:
        def fire() -> None:
            self._retries.discard(handle)
            self._names.put_nowait(name)

        handle = asyncio.get_running_loop().call_later(self._resolve_retry, fire)
        self._retries.add(handle)

    async def _resolve(self, name: str) -> None:
        assert self._zc is not None
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        timeout_ms = int(self._resolve_timeout * 1000)
        if not await info.async_request(self._zc.zeroconf, timeout_ms) or info.port is None:
            log.info("Could not resolve Zeroconf service %r; will ask again", name)
            self._retry_later(name)
            return
        for addr in server_addresses(info, self._use_ipv6, self._ifindexes):
            if addr not in self._seen:
                self._seen.add(addr)
                self._ready.append(addr)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ServerAddress:
        """The next server address not reported before; waits as long as it takes."""
        if self._zc is None:
            raise RuntimeError("ServerDiscovery is not open; use 'async with'")
        while not self._ready:
            await self._resolve(await self._names.get())
        return self._ready.popleft()


async def browse(
    interfaces: Sequence[str] | None,
    on_found: Callable[[ServerAddress], None],
    *,
    use_ipv6: bool = True,
) -> NoReturn:
    """Call ``on_found`` for every server address as it is resolved, until cancelled."""
    async with ServerDiscovery(interfaces, use_ipv6=use_ipv6) as discovery:
        async for addr in discovery:
            on_found(addr)
    raise AssertionError("unreachable: discovery never ends")
