"""The server's TCP listening socket, set up as the reference does (REFERENCE A2).

IPv6 dual-stack by default (an IPv4 address is written ``::FFFF:a.b.c.d``), ``AF_INET`` with
``--no-ipv6``; ``bind()`` only when an address or a port is given (otherwise the kernel picks a
port that only Zeroconf reveals); ``SO_REUSEADDR`` only with a port; ``SO_BINDTODEVICE`` for an
interface, where failure is logged, never fatal. Unlike the reference (backlog 5), the backlog is
large: under a burst of clients a short queue makes the kernel drop segments (DECISIONS).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket

from mandos.core.config import ServerConfig
from mandos.core.errors import ConfigError

log = logging.getLogger(__name__)

#: Room for a burst (N = 1,000 at once fits), but no more than the server drains within the
#: clients' 10 s handshake limit under a storm: a queued connection past it is wasted.
BACKLOG = 1024
_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


def _family_and_address(config: ServerConfig) -> tuple[socket.AddressFamily, str]:
    if not config.use_ipv6:
        return socket.AF_INET, config.address or "0.0.0.0"  # noqa: S104 - the reference's "any"
    address = config.address or "::"
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError as exc:
        raise ConfigError(f"address: {address!r} is not an IP address") from exc
    if parsed.version == 4:
        address = f"::FFFF:{address}"
    return socket.AF_INET6, address


def open_listening_socket(config: ServerConfig) -> socket.socket:
    """A non-blocking listening socket as ``config`` asks, or the inherited ``--socket`` fd."""
    if config.socket is not None:
        return inherited_listener(config.socket)
    family, address = _family_and_address(config)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if config.interface:
            _bind_to_device(sock, config.interface)
        if config.port is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if config.port is not None or config.address:
            if family == socket.AF_INET6:
                info = socket.getaddrinfo(
                    address,
                    config.port or 0,
                    family,
                    socket.SOCK_STREAM,
                    0,
                    socket.AI_NUMERICHOST,
                )
                sock.bind(info[0][4])
            else:
                sock.bind((address, config.port or 0))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        where = f"[{config.address or '*'}]:{config.port or 0}"
        raise ConfigError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def inherited_listener(fd: int) -> socket.socket:
    """The TCP listening socket on inherited descriptor ``fd``, made non-blocking.

    Raises:
        ConfigError: ``fd`` is not open, not a socket, or not a TCP (IPv4/IPv6 stream) socket.
    """
    try:
        os.fstat(fd)
    except OSError as exc:
        raise ConfigError(f"socket: descriptor {fd} is not open") from exc
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        problem = "not a socket" if exc.errno == errno.ENOTSOCK else exc.strerror or str(exc)
        raise ConfigError(f"socket: descriptor {fd} is {problem}") from exc
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        sock.detach()  # not ours to close: the descriptor stays as it was inherited
        raise ConfigError(f"socket: descriptor {fd} is not a TCP socket")
    sock.setblocking(False)
    return sock


def _bind_to_device(sock: socket.socket, interface: str) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, interface.encode() + b"\0")
    except OSError as exc:
        if exc.errno == errno.EPERM:
            log.error("No permission to bind to interface %s", interface)
        elif exc.errno == errno.ENOPROTOOPT:
            log.error("SO_BINDTODEVICE not available; cannot bind to interface %s", interface)
        elif exc.errno == errno.ENODEV:
            log.error("Interface %s does not exist, cannot bind", interface)
        else:
            raise


def listening_port(sock: socket.socket) -> int:
    """The port the socket listens on."""
    return int(sock.getsockname()[1])
