"""sd_notify(3) without libsystemd: one datagram to ``$NOTIFY_SOCKET``, if set."""

from __future__ import annotations

import os
import socket


def sd_notify(state: str) -> bool:
    """Tell systemd about ``state`` (e.g. ``READY=1``); False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or address[0] not in "/@":
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True
