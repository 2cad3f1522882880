"""Debian's real mandos-client 1.8.16 fetches a passphrase that opens a volume mandos-luks bound."""

from __future__ import annotations

import pytest

from tests.interop.conftest import reference_tree  # noqa: F401 - fixture used by name below
from tests.interop.reference import run_reference_client
from tests.luks.conftest import Rig, opens, serve
from tests.server.ourserver import RunningServer

pytestmark = pytest.mark.interop


@pytest.mark.usefixtures("reference_tree")
def test_reference_client_opens_the_bound_volume(rig: Rig, server: RunningServer) -> None:
    serve(server, rig.bind())
    done = run_reference_client(rig.keydir, server.connect, timeout=90)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert opens(rig.image, done.stdout, slot=1)
    server.wait_for_log("Sending secret to client1")
