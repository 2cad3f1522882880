"""mandos-monitor driven headless (textual pilot) against our own server (D-Bus on).

The approval scenario of test_app.py runs here with ``start_server`` pointing at our server:
client1 waits for approval (Debian's real mandos-client asks), shows up as "Approval in ...",
``a`` approves it and the client gets its password; then enable, disable and remove by key.
"""

from __future__ import annotations

import pytest

from tests.ctl.ourbus import StartServer, running_our_server
from tests.monitor import test_app as scenarios

on_bus = scenarios.on_bus


@pytest.fixture
def start_server() -> StartServer:
    """The scenario's server: ours."""
    return running_our_server


test_approve_key_lets_real_client_get_password = (
    scenarios.test_approve_key_lets_real_client_get_password
)
