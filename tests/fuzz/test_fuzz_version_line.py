"""Fuzz the version line through the real server path (ConnectionHandler over a socketpair).

Invariant: the server starts TLS (sends a ClientHello) exactly when the core's parser accepts
the line, never sends anything else, and never fails with anything but a logged line.
"""

from __future__ import annotations

import asyncio
import contextlib

from hypothesis import given
from hypothesis import strategies as st

from mandos.core.errors import RemoteProtocolError
from mandos.core.handshake import VersionLine, VersionOK
from tests.fuzz.conftest import FUZZ
from tests.fuzz.wire import SECRET, exchange, make_handler

_TLS_HANDSHAKE_RECORD = 0x16

#: Lines near the interesting ones: digits, signs, whitespace, CR/LF, NUL, high bytes.
_ALPHABET = st.sampled_from(list(b"0123456789+- \t\r\n\x00\x0b\x0c\xff\xe2\x80\xa8a"))
LINES = st.one_of(
    st.binary(max_size=80),
    st.lists(_ALPHABET, max_size=70).map(bytes),
    st.builds(lambda v, rest: f"{v}".encode() + rest, st.integers(-(10**20), 10**20),
              st.binary(max_size=8)),
)  # fmt: skip


def _core_accepts(data: bytes) -> bool:
    parser = VersionLine()
    parser.receive_data(data)
    parser.receive_data(b"")
    with contextlib.suppress(RemoteProtocolError):
        return isinstance(parser.next_event(), VersionOK)
    return False


@FUZZ
@given(LINES)
def test_server_starts_tls_exactly_when_the_core_accepts_the_line(data: bytes) -> None:
    handler, _ = make_handler()
    outcome = asyncio.run(exchange(handler, data))
    accepted = _core_accepts(data)
    if accepted:
        # exchange() half-closes after the line: a server that already sees that end-of-file
        # spends no TLS session on a peer gone (server/connection.py, _peer_closed).
        gone = any("closed before the TLS handshake" in m for m in outcome.messages)
        assert outcome.sent[:1] == bytes([_TLS_HANDSHAKE_RECORD]) or (
            gone and outcome.sent == b""
        ), outcome
    else:
        assert outcome.sent == b"", outcome
    assert SECRET not in outcome.sent
    assert not any("Internal error" in m for m in outcome.messages)
    assert len(outcome.messages) <= 2, outcome.messages


@FUZZ
@given(st.binary(max_size=200), st.lists(st.integers(1, 16), min_size=1, max_size=50))
def test_core_parser_only_raises_remote_protocol_errors_and_ignores_chunking(
    data: bytes, cuts: list[int]
) -> None:
    def run(chunks: list[bytes]) -> object:
        parser = VersionLine()
        try:
            for chunk in chunks:
                parser.receive_data(chunk)
                if isinstance(parser.next_event(), VersionOK):
                    break
            parser.receive_data(b"")
            return parser.next_event()
        except RemoteProtocolError as exc:
            return str(exc)

    chunks, rest = [], data
    for cut in cuts:
        chunks.append(rest[:cut])
        rest = rest[cut:]
    chunks.append(rest)
    assert run([c for c in chunks if c]) == run([data] if data else [])
