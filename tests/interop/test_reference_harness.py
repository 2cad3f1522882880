"""The harness works: Debian's real client gets its password from Debian's real server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop import reference
from tests.interop.reference import (
    REFERENCE_PASSWORD,
    KeygenResult,
    PrivateSystemBus,
    ReferenceServer,
    reference_keygen,
    run_reference_client,
    with_options,
)
from tests.ports import free_port
from tests.procs import processes

pytestmark = pytest.mark.interop

StartServer = Callable[..., ReferenceServer]


def test_real_client_gets_password_rsa(
    reference_server: StartServer, reference_rsa_keys: KeygenResult
) -> None:
    assert reference_rsa_keys.section_text is not None
    server = reference_server(with_options(reference_rsa_keys.section_text, checker="true"))
    done = run_reference_client(reference_rsa_keys.keydir, server.connect, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout == REFERENCE_PASSWORD
    server.wait_for_log(r"Sending secret to client1")


def test_real_client_gets_password_ed25519_ipv4(
    reference_server: StartServer, reference_ed25519_keys: KeygenResult
) -> None:
    assert reference_ed25519_keys.section_text is not None
    conf = with_options(reference_ed25519_keys.section_text, checker="true")
    server = reference_server(conf, address="127.0.0.1")
    done = run_reference_client(reference_ed25519_keys.keydir, server.connect, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout == REFERENCE_PASSWORD


def test_disabled_client_gets_nothing(
    reference_server: StartServer, reference_ed25519_keys: KeygenResult
) -> None:
    assert reference_ed25519_keys.section_text is not None
    conf = with_options(reference_ed25519_keys.section_text, checker="true", enabled="False")
    server = reference_server(conf)
    done = run_reference_client(
        reference_ed25519_keys.keydir, server.connect, timeout=5, extra_args=["--retry=1"]
    )
    assert done.returncode == -signal.SIGTERM
    assert done.stdout == b""
    server.wait_for_log(r"disabled")


def test_keygen_section_names_keys(tmp_path: Path) -> None:
    made = reference_keygen(
        tmp_path / "keys", key_type="ed25519", subtype="cv25519", password=b"pw", name="host-a"
    )
    assert made.section_text is not None
    assert made.section_text.startswith("[host-a]\n")
    assert len(made.value("key_id")) == 64
    assert len(made.value("fingerprint")) == 40
    listing = subprocess.run(
        ["certtool", "--key-id", "--hash=sha256", f"--infile={made.keydir / 'tls-pubkey.pem'}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listing.stdout.strip().upper() == made.value("key_id").upper()


def test_server_owns_bus_name_with_dbus(
    reference_server: StartServer,
    reference_ed25519_keys: KeygenResult,
    private_system_bus: PrivateSystemBus,
) -> None:
    assert reference_ed25519_keys.section_text is not None
    reference_server(
        with_options(reference_ed25519_keys.section_text, checker="true"), use_dbus=True
    )
    owner = subprocess.run(
        ["dbus-send", f"--bus={private_system_bus.address}", "--print-reply",
         "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
         "org.freedesktop.DBus.NameHasOwner", "string:se.recompile.Mandos"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "boolean true" in owner.stdout


def test_stop_ends_handler_children_holding_the_port(
    reference_server: StartServer, reference_ed25519_keys: KeygenResult
) -> None:
    assert reference_ed25519_keys.section_text is not None
    server = reference_server(with_options(reference_ed25519_keys.section_text, checker="true"))
    with socket.create_connection(("::1", server.port), timeout=30) as stalled:
        # A handler child is forked per connection; this one waits for a version line forever.
        server.wait_for_log(r"TCP connection from")
        sid = server.pid
        server.stop()
        assert not any(p.sid == sid and p.state != "Z" for p in processes())
        assert not reference.is_listening(os.getpid(), server.port)
        stalled.settimeout(30)
        assert stalled.recv(1) == b""


def test_client_with_no_server_is_ended_at_deadline(reference_ed25519_keys: KeygenResult) -> None:
    port = free_port("::1")
    done = run_reference_client(
        reference_ed25519_keys.keydir, f"::1:{port}", timeout=3, extra_args=["--retry=1"]
    )
    assert done.returncode == -signal.SIGTERM
    assert done.stdout == b""


def test_tagged_gpg_agent_is_reaped(tmp_path: Path, reference_ed25519_keys: KeygenResult) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    tag = "harness-test-" + os.urandom(4).hex()
    subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--import",
         str(reference_ed25519_keys.keydir / "seckey.txt")],
        env={**os.environ, reference.TAG_VAR: tag}, capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert reference.reap_tagged_agents(tag)  # importing a secret key starts an agent
    assert reference.reap_tagged_agents(tag) == []
