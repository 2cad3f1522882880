"""The whole exception tree of the project.

Our exception hierarchy::

    MandosError                      exit_code says how a main() ends
    ├── UsageError                   bad command line                      EX_USAGE (64)
    │   └── CtlUsageError            mandos-ctl's, argparse-style: usage text, exit 2
    ├── ConfigError                  bad file, option or value             EX_CONFIG (78)
    ├── ProtocolError                abstract, as in h11
    │   ├── LocalProtocolError       we misused the core (a bug)
    │   └── RemoteProtocolError      the peer misbehaved: log one line, close
    ├── TLSError(code, name)         GnuTLS said no
    │   └── HandshakeError
    ├── ClientNotFoundError(name)    mandos-ctl: no such client on the server
    ├── CheckerError
    ├── StateFileError
    ├── KeyFileError                 a key file is missing, unreadable or malformed
    ├── KeyGenError                  mandos-keygen could not make or write a key
    ├── AttemptFailed                mandos-client: one server gave no secret (may retry)
    ├── DecryptError
    ├── ShareError                   a threshold share is malformed, tampered or of another set
    ├── BusError
    │   ├── ServerUnreachable        no Mandos server on the bus, or no bus
    │   └── ServerCallFailed         the server answered a call with an error
    └── ZeroconfError                no mDNS sockets, no usable interface address or name

The core raises only these; any other exception escaping the core is a bug.
Messages never contain secrets or key material.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from typing import ClassVar


# sysexits.h
EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_OSERR = 71
EX_OSFILE = 72
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_PROTOCOL = 76
EX_NOPERM = 77
EX_CONFIG = 78


class MandosError(Exception):
    """Root of every error the project raises on purpose."""

    exit_code: ClassVar[int] = 1


class UsageError(MandosError):
    """The command line is wrong."""

    exit_code = EX_USAGE


class ConfigError(MandosError):
    """A configuration file, option or value is wrong; the message names the place."""

    exit_code = EX_CONFIG

    def __init__(self, message: str, origin: str | None = None, line: int | None = None) -> None:
        if origin is not None and line is not None:
            message = f"{origin}:{line}: {message}"
        elif origin is not None:
            message = f"{origin}: {message}"
        super().__init__(message)
        self.origin = origin
        self.line = line


class ProtocolError(MandosError):
    """Abstract: the wire protocol was broken by one side. Use a subclass."""

    def __init__(self, message: str) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise a subclass")
        super().__init__(message)


class LocalProtocolError(ProtocolError):
    """We misused the protocol core: a bug on our side."""

    exit_code = EX_SOFTWARE


class RemoteProtocolError(ProtocolError):
    """The peer misbehaved; log one line and close the connection."""

    exit_code = EX_PROTOCOL


class TLSError(MandosError):
    """GnuTLS returned an error code."""

    exit_code = EX_PROTOCOL

    def __init__(self, code: int, name: str, message: str = "") -> None:
        super().__init__(message or f"{name} ({code})")
        self.code = code
        self.name = name


class HandshakeError(TLSError):
    """The TLS handshake failed."""


class CtlUsageError(UsageError):
    """mandos-ctl's syntax error; ``usage`` is the text the reference prints before it."""

    exit_code = 2  # argparse's status, as the reference

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class ClientNotFoundError(MandosError):
    """A client named on mandos-ctl's command line is not on the server."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Client not found on server: {name!r}")
        self.name = name


class CheckerError(MandosError):
    """A checker command could not be formatted or started."""


class StateFileError(MandosError):
    """The state file cannot be read, parsed or written."""

    exit_code = EX_IOERR


class KeyFileError(MandosError):
    """A key file is missing, unreadable or malformed."""

    exit_code = EX_NOINPUT


class KeyGenError(MandosError):
    """mandos-keygen could not generate or write a key."""


class AttemptFailed(MandosError):
    """mandos-client got no secret from this server; one line, and the server may be retried.

    ``refused``: the server closed the connection without sending anything.
    """

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class DecryptError(MandosError):
    """An OpenPGP message could not be decrypted."""

    exit_code = EX_DATAERR


class BusError(MandosError):
    """A D-Bus call failed or the bus is unreachable."""

    exit_code = EX_UNAVAILABLE


class ServerUnreachable(BusError):
    """No Mandos server owns its bus name, or the bus itself cannot be reached (mandos-ctl: 1)."""

    exit_code = 1

    def __init__(self, detail: str) -> None:
        super().__init__(f"Could not connect to Mandos server: {detail}")


class ServerCallFailed(BusError):
    """The server answered a D-Bus call with an error (mandos-ctl: 1)."""

    exit_code = 1

    def __init__(self, detail: str) -> None:
        super().__init__(f"Failed to access Mandos server through D-Bus:\n{detail}")


class ZeroconfError(MandosError):
    """Zeroconf could not announce or browse: no mDNS sockets, no usable address or name."""

    exit_code = EX_UNAVAILABLE


class ShareError(MandosError):
    """A threshold share is malformed or tampered with, or shares do not combine."""

    exit_code = EX_DATAERR
