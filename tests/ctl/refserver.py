"""Debian's real Mandos 1.8.16 server on a private system bus, for mandos-ctl/monitor tests.

Built on tests/interop/reference.py: the server runs with D-Bus (``use_dbus=True``) so our
tools and Debian's mandos-ctl can both talk to it. Everything started is ended by PID.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.interop.reference import (
    KeygenResult,
    PrivateSystemBus,
    ReferenceServer,
    cached_reference_keys,
    reference_root,
    run_bounded,
    with_options,
)

REPO = Path(__file__).resolve().parents[2]
OUR_CTL = REPO / ".venv" / "bin" / "mandos-ctl"
OTHER_SECTION = (
    "[other-one.x]\n"
    "fingerprint = 00112233445566778899AABBCCDDEEFF00112233\n"
    "secret = aGVsbG8=\n"
    "timeout = P1DT2H\n"
    "enabled = False\n"
    "host = other.example\n"
)


@dataclass(frozen=True)
class Ran:
    """What a mandos-ctl run printed, and how it ended."""

    returncode: int
    stdout: str
    stderr: str


def reference_keys() -> KeygenResult:
    """The reference keygen's cached RSA keys for client1 (made once per cache)."""
    return cached_reference_keys("rsa4096")


def clients_conf(**client1_options: str) -> str:
    """client1 (real keys; checker ``true`` once a day) and a disabled ``other-one.x``."""
    section = reference_keys().section_text
    assert section is not None
    options = {"checker": "true", "interval": "P1D", **client1_options}
    return with_options(section, **options) + "\n" + OTHER_SECTION


@contextlib.contextmanager
def running_server(conf: str | None = None) -> Iterator[tuple[PrivateSystemBus, ReferenceServer]]:
    """A private system bus with the reference server on it, stopped (by PID) afterwards."""
    with (
        PrivateSystemBus() as bus,
        ReferenceServer(conf or clients_conf(), bus_env=bus.env, use_dbus=True) as server,
    ):
        wait_on_bus(bus)
        yield bus, server


def wait_on_bus(bus: PrivateSystemBus, timeout: float = 30.0) -> None:
    """Wait until the server's clients are listed on the bus (it claims its name late)."""
    deadline = time.monotonic() + timeout
    while True:
        done = reference_ctl(bus, [])
        if done.returncode == 0 and "client1" in done.stdout:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"server not on the bus: {done.stderr}")
        time.sleep(0.2)


def _run(argv: Sequence[str | Path], bus: PrivateSystemBus, timeout: float) -> Ran:
    env = {**os.environ, **bus.env, "LANG": "C.UTF-8"}
    done = run_bounded(argv, env=env, timeout=timeout)
    assert not done.timed_out, f"{argv} timed out"
    return Ran(done.returncode, done.stdout.decode(), done.stderr.decode())


def reference_ctl(bus: PrivateSystemBus, args: Sequence[str], timeout: float = 60) -> Ran:
    """Debian's mandos-ctl 1.8.16 (with Debian's python3 and python3-dbus)."""
    program = reference_root() / "usr/sbin/mandos-ctl"
    return _run(["/usr/bin/python3", program, *args], bus, timeout)


def our_ctl(bus: PrivateSystemBus, args: Sequence[str], timeout: float = 60) -> Ran:
    """Our mandos-ctl, as installed in the venv."""
    return _run([OUR_CTL, *args], bus, timeout)


def subprocess_env(bus: PrivateSystemBus) -> dict[str, str]:
    """This process's environment pointed at the private bus."""
    return {**os.environ, **bus.env}


__all__ = [
    "OUR_CTL",
    "Ran",
    "clients_conf",
    "our_ctl",
    "reference_ctl",
    "reference_keys",
    "running_server",
    "subprocess_env",
    "wait_on_bus",
]
