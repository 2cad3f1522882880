"""Debian's real mandos-client 1.8.16 against our server, with keys from Debian's mandos-keygen."""

from __future__ import annotations

import time

import pytest

from tests.interop.reference import (
    REFERENCE_PASSWORD,
    KeygenResult,
    run_reference_client,
    with_options,
)
from tests.server.ourserver import our_server

pytestmark = pytest.mark.interop


def _conf(keys: KeygenResult, **options: str) -> str:
    assert keys.section_text is not None
    return with_options(keys.section_text, checker="true", **options)


@pytest.mark.parametrize("host", ["::1", "127.0.0.1"])
def test_real_client_gets_password_rsa_keys(reference_rsa_keys: KeygenResult, host: str) -> None:
    with our_server(_conf(reference_rsa_keys), host=host) as server:
        done = run_reference_client(reference_rsa_keys.keydir, server.connect, timeout=60)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        assert done.stdout == REFERENCE_PASSWORD
        server.wait_for_log("Sending secret to client1")


def test_real_client_gets_password_ed25519_cv25519_keys(
    reference_ed25519_keys: KeygenResult,
) -> None:
    with our_server(_conf(reference_ed25519_keys)) as server:
        done = run_reference_client(reference_ed25519_keys.keydir, server.connect, timeout=60)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        assert done.stdout == REFERENCE_PASSWORD


def test_disabled_client_gets_nothing(reference_ed25519_keys: KeygenResult) -> None:
    with our_server(_conf(reference_ed25519_keys, enabled="False")) as server:
        done = run_reference_client(
            reference_ed25519_keys.keydir, server.connect, timeout=4, extra_args=["--retry=1"]
        )
        assert done.stdout == b""
        assert done.returncode != 0
        server.wait_for_log("Client client1 is disabled")


def test_unknown_client_gets_nothing(reference_ed25519_keys: KeygenResult) -> None:
    other = "[other]\nkey_id = " + "AB" * 32 + "\nsecret = AAAA\n"
    with our_server(other) as server:
        done = run_reference_client(
            reference_ed25519_keys.keydir, server.connect, timeout=4, extra_args=["--retry=1"]
        )
        assert done.stdout == b""
        server.wait_for_log("Client not found for key ID")


def test_approval_denied_by_default_gives_nothing(reference_ed25519_keys: KeygenResult) -> None:
    conf = _conf(reference_ed25519_keys, approval_delay="PT1S", approved_by_default="False")
    with our_server(conf) as server:
        done = run_reference_client(
            reference_ed25519_keys.keydir, server.connect, timeout=5, extra_args=["--retry=1"]
        )
        assert done.stdout == b""
        server.wait_for_log("timed out while waiting for approval")


def test_approval_granted_by_default_after_the_delay(reference_ed25519_keys: KeygenResult) -> None:
    conf = _conf(reference_ed25519_keys, approval_delay="PT2S", approved_by_default="True")
    with our_server(conf) as server:
        started = time.monotonic()
        done = run_reference_client(reference_ed25519_keys.keydir, server.connect, timeout=60)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        assert done.stdout == REFERENCE_PASSWORD
        assert time.monotonic() - started >= 2.0
        server.wait_for_log("needs approval")
