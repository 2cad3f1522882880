"""Frozen configuration of the server and of each client, with every default in one place.

Parsing lives in :mod:`mandos.core.config_files`; layering (defaults, then file, then command
line) is :func:`merge_server_config`. Runtime state is separate (:mod:`mandos.core.client_state`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from mandos.core.values import ClientName, Fingerprint, KeyId, Secret

#: GnuTLS priority string of the reference in raw-public-key mode (REFERENCE A2).
DEFAULT_PRIORITY: Final = (
    "SECURE128:!CTYPE-X.509:+CTYPE-RAWPK:!RSA:!VERS-ALL:+VERS-TLS1.3:%PROFILE_ULTRA"
)
DEFAULT_CONFIGDIR: Final = "/etc/mandos"
DEFAULT_STATEDIR: Final = "/var/lib/mandos"
DEFAULT_SERVICENAME: Final = "Mandos"
DEFAULT_CHECKER: Final = "fping -q -- %(host)s"  # as written "%%(host)s" in clients.conf


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings of the mandos daemon (mandos.conf plus command line)."""

    interface: str = ""
    address: str = ""
    port: int | None = None
    priority: str = DEFAULT_PRIORITY
    servicename: str = DEFAULT_SERVICENAME
    configdir: str = DEFAULT_CONFIGDIR
    statedir: str = DEFAULT_STATEDIR
    debug: bool = False
    debuglevel: str = ""  # "" means WARNING; else CRITICAL, ERROR, WARNING, INFO or DEBUG
    use_dbus: bool = True
    use_ipv6: bool = True
    restore: bool = True
    socket: int | None = None
    foreground: bool = False
    zeroconf: bool = True
    # Beyond the reference: bounded version line + TLS handshake (seconds).
    handshake_timeout: timedelta = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """One client's settings, as a clients.conf section describes it (REFERENCE A3)."""

    name: ClientName
    secret: Secret
    key_id: KeyId | None = None
    fingerprint: Fingerprint | None = None
    timeout: timedelta = timedelta(minutes=5)
    extended_timeout: timedelta = timedelta(minutes=15)
    interval: timedelta = timedelta(minutes=2)
    checker: str = DEFAULT_CHECKER
    host: str = ""
    approval_delay: timedelta = timedelta(0)
    approval_duration: timedelta = timedelta(seconds=1)
    approved_by_default: bool = True
    enabled: bool = True
    # Every key=value of the section after start-time expansion (unknown keys too).
    raw: tuple[tuple[str, str], ...] = field(default=(), compare=False)


def merge_server_config(base: ServerConfig, overrides: dict[str, Any]) -> ServerConfig:
    """Layer settings given on the command line (only those not None) over ``base``."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(base, **given)
