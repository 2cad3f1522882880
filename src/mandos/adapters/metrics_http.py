"""A minimal HTTP/1.0 endpoint serving ``GET /metrics`` in the event loop.

The scrape is rendered in the loop (where the registry lives), so no thread reads the core.
Requests are bounded: 8 KiB of header, 10 s to send it, one request per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

from mandos.core.errors import ConfigError

log = logging.getLogger("mandos")

MAX_HEADER: Final = 8192
READ_TIMEOUT_SECONDS: Final = 10.0


class MetricsEndpoint:
    """Serves ``render()`` as ``content_type`` at ``/metrics`` on ``host``:``port``."""

    def __init__(self, render: Callable[[], bytes], content_type: str) -> None:
        self._render = render
        self._content_type = content_type
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the port (useful with port 0).

        Raises:
            ConfigError: the address cannot be bound.
        """
        try:
            self._server = await asyncio.start_server(self._serve, host, port)
        except OSError as exc:
            raise ConfigError(f"metrics address {host}:{port}: {exc.strerror or exc}") from exc
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and end open connections."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
            status, body, ctype = self._answer(head)
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if not head.startswith(b"HEAD "):
                writer.write(body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _answer(self, head: bytes) -> tuple[str, bytes, str]:
        if len(head) > MAX_HEADER:
            return "431 Request Header Fields Too Large", b"", "text/plain"
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3 or parts[0] not in (b"GET", b"HEAD"):
            return "405 Method Not Allowed", b"GET /metrics only\n", "text/plain"
        path = parts[1].split(b"?", 1)[0]
        if path == b"/metrics":
            return "200 OK", self._render(), self._content_type
        if path == b"/":
            return "200 OK", b'<a href="/metrics">metrics</a>\n', "text/html"
        return "404 Not Found", b"not found: try /metrics\n", "text/plain"
