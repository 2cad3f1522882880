"""The clear-text version line a Mandos client sends before TLS (REFERENCE B), sans-I/O.

Rules of this module:

1. Bytes in, events out: ``receive_data(chunk)`` then ``next_event()``, which returns
   ``NEED_DATA`` or ``VersionOK``, or raises ``RemoteProtocolError``. ``receive_data(b"")``
   means end of file.
2. The line ends at the first ``\\n``; a ``\\r`` before it is whitespace like any other. The
   version is the first whitespace-separated field; it must be a decimal integer no greater
   than 1 (the reference accepts ``0`` and negative numbers too, and so do we).
3. A line may not be longer than ``max_line`` bytes (the reference reads without a bound;
   an unbounded read is a memory hazard). Reaching the bound without a newline is an error at
   once, so feeding one byte at a time gives the same result as feeding everything at once.
4. Errors are sticky: once the peer has broken the protocol every later call raises again.
5. Bytes received after the newline are kept in ``trailing`` for the TLS layer (a
   well-behaved client sends none before the server starts the handshake).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final, Literal

from mandos.core.errors import RemoteProtocolError

#: The highest protocol version this server speaks.
PROTOCOL_VERSION: Final = 1
#: Longest accepted version line, terminator excluded.
DEFAULT_MAX_LINE: Final = 64

_INTEGER = re.compile(rb"[+-]?[0-9]+")


class _Need(enum.Enum):
    NEED_DATA = "NEED_DATA"


#: ``next_event()`` needs more bytes before it can answer.
NEED_DATA: Final = _Need.NEED_DATA


@dataclass(frozen=True, slots=True)
class VersionOK:
    """The peer announced a protocol version we speak."""

    version: int


def _shown(raw: bytes) -> str:
    """A version field as it may appear in a log line."""
    return raw.decode("ascii", "backslashreplace")


def parse_version_line(line: bytes) -> int:
    """The version announced by one line (terminator already removed).

    Raises:
        RemoteProtocolError: empty line, a first field that is not an integer, or a version
            above ``PROTOCOL_VERSION``.
    """
    if line == b"1\r":  # what every client sends ("1\r\n"), answered without the regex
        return 1
    fields = line.split()
    if not fields:
        raise RemoteProtocolError("Empty protocol version line")
    first = fields[0]
    if _INTEGER.fullmatch(first) is None:
        raise RemoteProtocolError(f"Unknown protocol version: {_shown(first)!r}")
    version = int(first)
    if version > PROTOCOL_VERSION:
        raise RemoteProtocolError(f"Unknown protocol version: {_shown(first)!r}")
    return version


class VersionLine:
    """Server side of the version exchange: reads one line, then is done."""

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._max_line = max_line
        self._buffer = bytearray()
        self._eof = False
        self._result: VersionOK | None = None
        self._error: RemoteProtocolError | None = None

    @property
    def trailing(self) -> bytes:
        """Bytes received after the version line (empty until the line is complete)."""
        return bytes(self._buffer) if self._result is not None else b""

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed its side."""
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_event(self) -> VersionOK | Literal[_Need.NEED_DATA]:
        """``VersionOK`` once a good line arrived, ``NEED_DATA`` until then.

        Raises:
            RemoteProtocolError: the line is bad, too long, or the peer closed too early.
        """
        if self._error is not None:
            raise self._error
        if self._result is not None:
            return self._result
        try:
            return self._advance()
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    def _advance(self) -> VersionOK | Literal[_Need.NEED_DATA]:
        end = self._buffer.find(b"\n", 0, self._max_line + 1)
        if end < 0:
            if len(self._buffer) > self._max_line:
                raise RemoteProtocolError(
                    f"Protocol version line longer than {self._max_line} bytes"
                )
            if self._eof:
                raise RemoteProtocolError("Connection closed before the protocol version line")
            return NEED_DATA
        version = parse_version_line(bytes(self._buffer[:end]))
        del self._buffer[: end + 1]
        self._result = VersionOK(version)
        return self._result
