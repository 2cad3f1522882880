"""The exception tree: exit codes, placed config errors, the abstract ProtocolError."""

from __future__ import annotations

import pytest

from mandos.core import errors
from mandos.core.errors import (
    ConfigError,
    LocalProtocolError,
    MandosError,
    ProtocolError,
    RemoteProtocolError,
    TLSError,
)


def _tree(cls: type[MandosError]) -> list[type[MandosError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _tree(sub))]


def test_every_error_has_a_sysexits_code() -> None:
    for cls in _tree(MandosError):
        if cls.__module__ == errors.__name__ and cls is not errors.CtlUsageError:
            assert cls.exit_code == 1 or 64 <= cls.exit_code <= 78, cls
    assert errors.CtlUsageError.exit_code == 2  # argparse's status, as mandos-ctl 1.8.16


def test_config_error_names_the_place() -> None:
    assert str(ConfigError("bad")) == "bad"
    assert str(ConfigError("bad", "clients.conf")) == "clients.conf: bad"
    placed = ConfigError("bad", "clients.conf", 3)
    assert str(placed) == "clients.conf:3: bad"
    assert (placed.origin, placed.line) == ("clients.conf", 3)
    assert str(ConfigError("bad", None, 3)) == "bad"  # a line without a file names nothing


def test_protocol_error_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        ProtocolError("x")
    assert str(RemoteProtocolError("peer")) == "peer"
    assert LocalProtocolError("us").exit_code == errors.EX_SOFTWARE


def test_tls_error_keeps_code_and_name() -> None:
    exc = TLSError(-9, "GNUTLS_E_UNEXPECTED_PACKET_LENGTH")
    assert (exc.code, exc.name) == (-9, "GNUTLS_E_UNEXPECTED_PACKET_LENGTH")
    assert str(exc) == "GNUTLS_E_UNEXPECTED_PACKET_LENGTH (-9)"
    assert str(TLSError(-9, "E", "the peer went away")) == "the peer went away"
