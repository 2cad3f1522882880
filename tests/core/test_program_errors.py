"""The errors the programs raise live in the one tree too: their messages, fields and statuses."""

from __future__ import annotations

from mandos.core.errors import (
    EX_UNAVAILABLE,
    EX_USAGE,
    AttemptFailed,
    BusError,
    ClientNotFoundError,
    CtlUsageError,
    KeyGenError,
    MandosError,
    ServerCallFailed,
    ServerUnreachable,
    UsageError,
)


def test_ctl_usage_error_carries_the_usage_and_argparses_status() -> None:
    exc = CtlUsageError("argument -t: bad", "usage: mandos-ctl [-h]\n")
    assert isinstance(exc, UsageError)
    assert (str(exc), exc.usage) == ("argument -t: bad", "usage: mandos-ctl [-h]\n")
    assert (exc.exit_code, UsageError.exit_code) == (2, EX_USAGE)  # as mandos-ctl 1.8.16


def test_client_not_found_names_the_client() -> None:
    exc = ClientNotFoundError("foo")
    assert (str(exc), exc.name, exc.exit_code) == ("Client not found on server: 'foo'", "foo", 1)


def test_attempt_failed_says_whether_the_server_refused() -> None:
    assert not AttemptFailed("connect: Connection refused").refused
    refused = AttemptFailed("the server sent nothing (refused)", refused=True)
    assert refused.refused
    assert str(refused) == "the server sent nothing (refused)"


def test_bus_errors_read_as_mandos_ctls() -> None:
    down = ServerUnreachable("name has no owner")
    failed = ServerCallFailed("org.freedesktop.DBus.Error.AccessDenied: no")
    assert str(down) == "Could not connect to Mandos server: name has no owner"
    assert str(failed) == (
        "Failed to access Mandos server through D-Bus:\norg.freedesktop.DBus.Error.AccessDenied: no"
    )
    assert isinstance(down, BusError)
    assert isinstance(failed, BusError)
    assert (down.exit_code, failed.exit_code, BusError.exit_code) == (1, 1, EX_UNAVAILABLE)


def test_keygen_error_is_a_plain_mandos_error() -> None:
    assert isinstance(KeyGenError("gpg made no OpenPGP key"), MandosError)
    assert KeyGenError.exit_code == 1
