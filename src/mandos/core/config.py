"""Frozen configuration of the server and of each client, with every default in one place.

The defaults are the field defaults of :class:`ServerConfig` and :class:`ClientConfig` (and
the ``DEFAULT_*`` constants they use); clients.conf's ``[DEFAULT]`` section is derived from
them. Parsing lives in :mod:`mandos.core.config_files`. A source that sets only some settings
(mandos.conf, the command line) gives a :class:`ServerSettings`, and layering (defaults, then
file, then command line) is the pure merge :func:`merge_server_config`. Runtime state is
separate (:mod:`mandos.core.client_state`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

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
    # Beyond the reference: observability (off unless set; the shipped mandos.conf sets
    # audit_log). "" means none.
    audit_log: str = ""
    metrics_address: str = ""  # HOST:PORT serving /metrics
    metrics_per_client: bool = False
    # Beyond the reference: TLS handshakes in this many worker threads (0: in the event loop).
    handshake_workers: int = 0


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """One client's settings, as a clients.conf section describes it (REFERENCE A3)."""

    name: ClientName
    secret: Secret
    key_id: KeyId | None = None
    # key_id's companions: a section's key_id may list several during a key rotation.
    other_key_ids: tuple[KeyId, ...] = ()
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


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Some settings of the server, as one source gives them: None means "not set here".

    The fields are those of :class:`ServerConfig` (a test keeps the two in step).
    """

    interface: str | None = None
    address: str | None = None
    port: int | None = None
    priority: str | None = None
    servicename: str | None = None
    configdir: str | None = None
    statedir: str | None = None
    debug: bool | None = None
    debuglevel: str | None = None
    use_dbus: bool | None = None
    use_ipv6: bool | None = None
    restore: bool | None = None
    socket: int | None = None
    foreground: bool | None = None
    zeroconf: bool | None = None
    handshake_timeout: timedelta | None = None
    audit_log: str | None = None
    metrics_address: str | None = None
    metrics_per_client: bool | None = None
    handshake_workers: int | None = None

    def given(self) -> dict[str, object]:
        """The settings this source sets, by ServerConfig field name."""
        names = (f.name for f in dataclasses.fields(ServerSettings))
        return {name: value for name in names if (value := getattr(self, name)) is not None}


def merge_server_config(base: ServerConfig, *layers: ServerSettings) -> ServerConfig:
    """``base`` with each layer's settings over it, later layers winning."""
    for layer in layers:
        base = dataclasses.replace(base, **layer.given())  # type: ignore[arg-type]
    return base
