"""``HOST:PORT`` as given to ``--metrics-address`` (pure): ``127.0.0.1:9122``, ``[::1]:9122``."""

from __future__ import annotations

import ipaddress

from mandos.core.errors import ConfigError


def parse_host_port(text: str) -> tuple[str, int]:
    """The host (an IP address, brackets removed) and the port of ``text``.

    Raises:
        ConfigError: not ``ADDRESS:PORT``, not an IP address, or the port is not 1-65535.
    """
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{text!r} is not ADDRESS:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"{text!r}: write an IPv6 address in brackets, as [::1]:PORT")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{text!r}: {host!r} is not an IP address") from None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{text!r}: {port_text!r} is not a port number")
    return host, int(port_text)
