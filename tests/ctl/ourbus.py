"""Our own server on a private system bus, standing in for the reference in the ctl/monitor tests.

It serves the same clients.conf as tests/ctl/refserver.py (Debian's keygen section for client1
and a disabled ``other-one.x``), with D-Bus on, so the scenarios written against Debian's server
run unchanged against ours. Both servers satisfy :class:`ServerUnderTest`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol

from tests.ctl.refserver import clients_conf, running_server, wait_on_bus
from tests.interop.reference import PrivateSystemBus
from tests.server.ourserver import our_server


class ServerUnderTest(Protocol):
    """What the scenarios use of a running server (ours or Debian's)."""

    @property
    def connect(self) -> str: ...

    def wait_for_log(self, pattern: str, /) -> object: ...

    def stop(self) -> object: ...


#: ``start(conf)``: a private bus with a server on it; ``None`` means the default clients.conf.
StartServer = Callable[
    [str | None], contextlib.AbstractContextManager[tuple[PrivateSystemBus, ServerUnderTest]]
]


@contextlib.contextmanager
def running_our_server(
    conf: str | None = None,
) -> Iterator[tuple[PrivateSystemBus, ServerUnderTest]]:
    """A private system bus with our server on it (D-Bus on), stopped by PID afterwards."""
    with (
        PrivateSystemBus() as bus,
        our_server(conf or clients_conf(), use_dbus=True, env=bus.env) as server,
    ):
        wait_on_bus(bus)
        yield bus, server


def running_reference_server(
    conf: str | None = None,
) -> contextlib.AbstractContextManager[tuple[PrivateSystemBus, ServerUnderTest]]:
    """Debian's server, typed as a :class:`ServerUnderTest`."""
    return running_server(conf)


__all__ = ["ServerUnderTest", "StartServer", "running_our_server", "running_reference_server"]
