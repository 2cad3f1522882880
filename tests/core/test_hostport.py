"""--metrics-address HOST:PORT (core/hostport.py)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mandos.core.errors import ConfigError
from mandos.core.hostport import parse_host_port


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1:9122", ("127.0.0.1", 9122)),
        ("[::1]:9122", ("::1", 9122)),
        (" 0.0.0.0:1 ", ("0.0.0.0", 1)),
    ],
)
def test_good(text: str, want: tuple[str, int]) -> None:
    assert parse_host_port(text) == want


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("9122", "not ADDRESS:PORT"),
        (":9122", "not ADDRESS:PORT"),
        ("::1:9122", "in brackets"),
        ("localhost:9122", "not an IP address"),
        ("127.0.0.1:0", "not a port number"),
        ("127.0.0.1:65536", "not a port number"),
        ("127.0.0.1:http", "not a port number"),
    ],
)
def test_bad(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_host_port(text)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=40))
def test_never_crashes(text: str) -> None:
    with contextlib.suppress(ConfigError):
        _host, port = parse_host_port(text)
        assert 0 < port < 65536
