"""Our mandos-client against Debian's real mandos 1.8.16 server, with keys from its keygen."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from tests.client.peer import start_client
from tests.interop.conftest import (  # noqa: F401 - fixtures used by name below
    private_system_bus,
    reference_ed25519_keys,
    reference_rsa_keys,
    reference_server,
    reference_tree,
)
from tests.interop.reference import (
    REFERENCE_PASSWORD,
    KeygenResult,
    ReferenceServer,
    with_options,
)
from tests.keyfiles import client_key_args

pytestmark = pytest.mark.interop


def _key_args(keys: KeygenResult) -> list[str]:
    return [*client_key_args(keys.keydir), "--interface=none", "--network-hook-dir=/nonexistent"]


@pytest.mark.parametrize("which", ["rsa", "ed25519"])
async def test_gets_the_password_from_the_reference_server(
    reference_server: Callable[..., ReferenceServer],  # noqa: F811
    reference_rsa_keys: KeygenResult,  # noqa: F811
    reference_ed25519_keys: KeygenResult,  # noqa: F811
    which: str,
) -> None:
    keys = reference_rsa_keys if which == "rsa" else reference_ed25519_keys
    assert keys.section_text is not None
    server = reference_server(keys.section_text)
    client = await start_client([f"--connect={server.connect}", "--retry=1", *_key_args(keys)])
    try:
        rc, out, err = await client.finish(limit=90)
    finally:
        await client.stop()
    assert (rc, out) == (0, REFERENCE_PASSWORD), err
    assert "Traceback" not in err


async def test_disabled_client_is_refused_and_retried(
    reference_server: Callable[..., ReferenceServer],  # noqa: F811
    reference_ed25519_keys: KeygenResult,  # noqa: F811
) -> None:
    keys = reference_ed25519_keys
    assert keys.section_text is not None
    server = reference_server(with_options(keys.section_text, enabled="False"))
    client = await start_client([f"--connect={server.connect}", "--retry=0.5", *_key_args(keys)])
    try:
        await client.wait_for_lines("refused", count=2, limit=90)
        rc, out, err = await client.terminate()
    finally:
        await client.stop()
    assert (rc, out) == (-signal.SIGTERM, b"")
    assert "Traceback" not in err
