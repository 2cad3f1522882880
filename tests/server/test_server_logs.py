"""What our server says at the default log level: enough for an admin, no debugging detail."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from mandos.adapters.gnutls.keys import generate_ed25519_keypair
from tests.server.conftest import TLSKey, client_section, fetch
from tests.server.ourserver import our_server

SECRET = b"\x85\x01\x02 not really OpenPGP, the server never looks"


def _other_key() -> TLSKey:
    return TLSKey(*generate_ed25519_keypair())


# Without --debug the server logs to syslog when /dev/log exists; these tests read its stderr.
pytestmark = pytest.mark.skipif(Path("/dev/log").exists(), reason="logs would go to syslog")


def test_start_up_names_port_address_and_clients(tls_key: TLSKey) -> None:
    conf = client_section("c1", tls_key, SECRET) + client_section("c2", _other_key(), SECRET)
    with our_server(conf, debug=False) as server:
        log = server.wait_for_log("clients loaded")
    line = next(line for line in log.splitlines() if "Listening on" in line)
    assert re.search(
        rf"INFO: Listening on port {server.port}, address ::ffff:127\.0\.0\.1; 2 clients loaded$",
        line,
    ), line


def test_secret_sent_and_refusals_are_logged_without_debug(tls_key: TLSKey) -> None:
    conf = client_section("c1", tls_key, SECRET, checker="true", interval="PT1S")
    with our_server(conf, debug=False) as server:
        assert fetch(server.host, server.port, tls_key) == SECRET
        server.wait_for_log("INFO: Sending secret to c1")
        time.sleep(2.5)  # two or three checkers ran
        log = server.log_text()
    assert "DEBUG" not in log
    assert "Starting checker" not in log  # every interval: debugging detail
    assert "Checker for c1 succeeded" not in log


def test_disabled_client_refusal_and_timeout_cause(tls_key: TLSKey) -> None:
    conf = client_section("c1", tls_key, SECRET, checker="false", interval="PT1S", timeout="PT1S")
    with our_server(conf, debug=False) as server:
        log = server.wait_for_log("Disabling client c1", timeout=30)
        assert re.search(
            r"INFO: Disabling client c1: timed out: no successful check within its timeout "
            r"\(never\)",
            log,
        ), log
        assert fetch(server.host, server.port, tls_key) is None
        server.wait_for_log("INFO: Client c1 is disabled")


def test_each_unknown_key_is_logged_once(tls_key: TLSKey) -> None:
    with our_server(client_section("c1", _other_key(), SECRET), debug=False) as server:
        for _ in range(3):
            assert fetch(server.host, server.port, tls_key) is None
        server.wait_for_log(f"Client not found for key ID: {tls_key.key_id}")
        time.sleep(0.3)  # the later refusals have been logged, if they were
        log = server.log_text()
    assert log.count(f"Client not found for key ID: {tls_key.key_id}") == 1, log


def test_misspelled_option_gets_a_warning_with_file_and_line(tls_key: TLSKey) -> None:
    conf = client_section("c1", tls_key, SECRET, intervall="PT1M", domain="example.org")
    with our_server(conf, debug=False) as server:
        log = server.wait_for_log("clients loaded")
    path = server.configdir / "clients.conf"
    assert f"WARNING: {path}:4: unknown option 'intervall'; did you mean 'interval'?" in log
    assert "domain" not in log  # a custom key, for %(domain)s expansions
