"""Debian's real mandos-client 1.8.16 with keys and a section from OUR keygen, on OUR server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import PASSWORD, OurKeys, make_our_keys
from tests.interop.conftest import reference_tree  # noqa: F401 - fixture used by name below
from tests.interop.reference import run_reference_client
from tests.server.ourserver import our_server

pytestmark = pytest.mark.interop


def _check(keys: OurKeys) -> None:
    with our_server(keys.conf()) as server:
        done = run_reference_client(keys.keydir, server.connect, timeout=90)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        assert done.stdout == PASSWORD
        server.wait_for_log("Sending secret to client1")


@pytest.mark.usefixtures("reference_tree")
def test_ed25519_cv25519_keys(ed25519_keys: OurKeys) -> None:
    _check(ed25519_keys)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.usefixtures("reference_tree")
def test_rsa4096_keys(tmp_path: Path) -> None:
    """Our keygen's defaults: RSA-4096 signing key and RSA-4096 encryption subkey."""
    _check(make_our_keys(tmp_path))
