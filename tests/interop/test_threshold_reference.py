"""Threshold shares with Debian's real Mandos 1.8.16: its server stores and serves a share
unchanged, and its client, which knows nothing of shares, prints the share as it is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import ED25519, PASSWORD, OurKeys, make_our_keys
from tests.e2e.threshold_setup import conf, make_share_sections, run_client
from tests.interop.reference import ReferenceServer, run_reference_client
from tests.ports import free_port
from tests.server.ourserver import our_server

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def ed25519_keys(tmp_path_factory: pytest.TempPathFactory) -> OurKeys:
    """Keys from our mandos-keygen (Ed25519, Cv25519, Ed25519 TLS)."""
    return make_our_keys(tmp_path_factory.mktemp("ed25519"), *ED25519)


def test_debians_server_holding_a_share_unlocks(
    ed25519_keys: OurKeys,
    tmp_path: Path,
    reference_server: Callable[..., ReferenceServer],
) -> None:
    """Debian's server has share 1, ours share 2, the third server is stopped: 2 of 3."""
    sections = make_share_sections(ed25519_keys, tmp_path / "shares")
    debian = reference_server(conf(sections[0]))
    with our_server(conf(sections[1])) as ours:
        stopped = f"--connect=127.0.0.1:{free_port()}"
        done = run_client(
            ed25519_keys, tmp_path / "hooks", f"--connect={debian.connect}",
            f"--connect={ours.connect}", stopped,
        )  # fmt: skip
    err = done.stderr.decode()
    assert (done.returncode, done.stdout) == (0, PASSWORD), err
    assert "got share 1 of 3" in err or "share 1 of 3 (threshold 2) of set" in err


def test_debians_client_prints_the_share(ed25519_keys: OurKeys, tmp_path: Path) -> None:
    """docs/differences.md: a threshold setup needs our client; Debian's prints the share."""
    sections = make_share_sections(ed25519_keys, tmp_path / "shares")
    with our_server(conf(sections[2])) as ours:
        done = run_reference_client(ed25519_keys.keydir, ours.connect, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.startswith(b"MANDOS-SHARE 1\nset: ")
    assert b"share: 3 of 3, threshold 2\n" in done.stdout
