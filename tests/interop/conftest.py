"""Fixtures that run Debian's real Mandos 1.8.16 programs (see tests/interop/reference.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.reference import (
    KeygenResult,
    PrivateSystemBus,
    ReferenceServer,
    ReferenceUnavailable,
    cached_reference_keys,
    reference_root,
)


@pytest.fixture(scope="session")
def reference_tree() -> Path:
    """The unpacked reference packages; a missing reference fails (never skips) the test."""
    try:
        return reference_root()
    except ReferenceUnavailable as exc:
        pytest.fail(f"reference Mandos unavailable: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def reference_rsa_keys(reference_tree: Path) -> KeygenResult:  # noqa: ARG001 - needs the tree
    """The keygen's default keys (RSA-4096 + RSA-4096, Ed25519 TLS) and their section."""
    return cached_reference_keys("rsa4096")


@pytest.fixture(scope="session")
def reference_ed25519_keys(reference_tree: Path) -> KeygenResult:  # noqa: ARG001 - needs the tree
    """Ed25519 signing key with a Curve25519 encryption subkey, Ed25519 TLS, and their section."""
    return cached_reference_keys("ed25519", key_type="ed25519", subtype="cv25519")


@pytest.fixture
def private_system_bus() -> Iterator[PrivateSystemBus]:
    """A private dbus-daemon standing in for the system bus (DBUS_SYSTEM_BUS_ADDRESS in .env)."""
    with PrivateSystemBus() as bus:
        yield bus


@pytest.fixture
def reference_server(
    reference_tree: Path,  # noqa: ARG001 - the server runs from the unpacked tree
    private_system_bus: PrivateSystemBus,
) -> Iterator[Callable[..., ReferenceServer]]:
    """Factory: start_server(clients_conf, **ReferenceServer options) -> a running server.

    Every server it started is stopped (with all its children) at teardown.
    """
    started: list[ReferenceServer] = []

    def start(clients_conf: str, **options: Any) -> ReferenceServer:
        options.setdefault("bus_env", private_system_bus.env)
        server = ReferenceServer(clients_conf, **options)
        started.append(server)
        server.start()
        return server

    yield start
    for server in reversed(started):
        server.stop()
