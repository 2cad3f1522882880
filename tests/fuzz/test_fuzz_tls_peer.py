"""Fuzz the TLS peer side: a real GnuTLS Mandos client's first flight, mutated, sent to the
real server path (ConnectionHandler, real GnuTLS) after a good version line.

Invariant: every exchange ends within the handshake timeout with one logged line or none;
the secret is never sent; no request is left pending in the registry.
"""

from __future__ import annotations

import asyncio
from functools import cache

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import FUZZ
from tests.fuzz.wire import SECRET, exchange, make_handler, real_first_flight


@cache
def _flight() -> bytes:
    return asyncio.run(real_first_flight())


@st.composite
def mutated_flights(draw: st.DrawFn) -> bytes:
    flight = bytearray(_flight())
    for _ in range(draw(st.integers(0, 8))):
        at = draw(st.integers(0, len(flight) - 1))
        match draw(st.sampled_from(["flip", "set", "insert", "delete"])):
            case "flip":
                flight[at] ^= 1 << draw(st.integers(0, 7))
            case "set":
                flight[at] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 0x16, 0x03]))
            case "insert":
                flight[at:at] = draw(st.binary(min_size=1, max_size=16))
            case _:
                del flight[at : at + draw(st.integers(1, 16))]
    if draw(st.booleans()):
        flight = flight[: draw(st.integers(0, len(flight)))]
    return bytes(flight)


def test_the_recorded_flight_is_a_tls_server_hello() -> None:
    flight = _flight()
    assert flight[:1] == b"\x16"  # handshake record
    assert flight[5:6] == b"\x02"  # ServerHello


@FUZZ
@given(mutated_flights())
def test_mutated_peer_is_refused_cleanly(flight: bytes) -> None:
    handler, registry = make_handler()
    outcome = asyncio.run(exchange(handler, b"1\r\n" + flight))
    assert SECRET not in outcome.sent
    assert "Sending secret to c1" not in outcome.messages
    assert not any("Internal error" in m for m in outcome.messages), outcome.messages
    assert len(outcome.messages) <= 2, outcome.messages
    assert registry.snapshot("c1")["ApprovalPending"] is False
