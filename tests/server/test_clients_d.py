"""clients.d/*.conf drop-ins and several key IDs per client: the loader and the running server."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mandos.adapters.gnutls.keys import generate_ed25519_keypair
from mandos.core.errors import ConfigError
from mandos.server.main import clients_loader
from tests.ports import free_port
from tests.server.conftest import TLSKey, client_section, fetch
from tests.server.ourserver import our_server

SECRET = b"opaque secret"


def configdir(tmp_path: Path, main: str | None, **drop_ins: str) -> Path:
    if main is not None:
        (tmp_path / "clients.conf").write_text(main)
    if drop_ins:
        (tmp_path / "clients.d").mkdir()
    for name, text in drop_ins.items():
        (tmp_path / "clients.d" / name).write_text(text)
    return tmp_path


def test_drop_ins_follow_clients_conf_in_lexical_order(tmp_path: Path, tls_key: TLSKey) -> None:
    d = configdir(
        tmp_path,
        client_section("main", tls_key, SECRET),
        **{
            "b.conf": client_section("b", tls_key, SECRET),
            "a.conf": client_section("a", tls_key, SECRET),
            "c.conf.disabled": "[broken\n",
            "README": "not a drop-in\n",
            ".hidden.conf": "[broken\n",
        },
    )
    assert [c.name.value for c in clients_loader(str(d))] == ["main", "a", "b"]


def test_drop_ins_without_clients_conf(tmp_path: Path, tls_key: TLSKey) -> None:
    d = configdir(tmp_path, None, **{"x.conf": client_section("x", tls_key, SECRET)})
    assert [c.name.value for c in clients_loader(str(d))] == ["x"]


def test_an_unreadable_clients_d_is_an_error(tmp_path: Path, tls_key: TLSKey) -> None:
    d = configdir(tmp_path, client_section("a", tls_key, SECRET))
    (d / "clients.d").write_text("a file, not a directory")
    with pytest.raises(ConfigError, match=r"^clients\.d: cannot read: Not a directory"):
        clients_loader(str(d))


def test_a_client_defined_twice_names_both_places(tmp_path: Path, tls_key: TLSKey) -> None:
    d = configdir(
        tmp_path,
        "# header\n" + client_section("one", tls_key, SECRET),
        **{"z.conf": "\n\n" + client_section("one", tls_key, SECRET)},
    )
    with pytest.raises(ConfigError) as err:
        clients_loader(str(d))
    assert str(err.value) == "clients.d/z.conf:3: client one is already defined at clients.conf:2"


def test_a_broken_drop_in_is_named_with_its_line(tmp_path: Path, tls_key: TLSKey) -> None:
    bad = client_section("b", tls_key, SECRET, timeout="PT5X")
    d = configdir(tmp_path, client_section("a", tls_key, SECRET), **{"b.conf": bad})
    with pytest.raises(ConfigError, match=r"^clients\.d/b\.conf:4: timeout: "):
        clients_loader(str(d))


def test_a_broken_drop_in_stops_the_server_at_start(tmp_path: Path, tls_key: TLSKey) -> None:
    d = configdir(tmp_path, client_section("a", tls_key, SECRET), **{"b.conf": "[b]\nkey_id = x\n"})
    (tmp_path / "state").mkdir()
    argv = [
        sys.executable, "-m", "mandos.server", "--foreground", "--no-dbus", "--no-zeroconf",
        "--address=127.0.0.1", f"--port={free_port('127.0.0.1')}", f"--configdir={d}",
        f"--statedir={tmp_path / 'state'}",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 78
    assert done.stderr.strip().splitlines()[-1].startswith("mandos: clients.d/b.conf:2: key_id")


def test_sighup_adds_a_drop_in_and_a_broken_one_keeps_the_old_clients(tls_key: TLSKey) -> None:
    other = TLSKey(*generate_ed25519_keypair())
    with our_server(client_section("c1", tls_key, SECRET)) as server:
        assert fetch(server.host, server.port, other) is None
        (server.configdir / "clients.d").mkdir()
        drop_in = server.configdir / "clients.d" / "c2.conf"
        drop_in.write_text(client_section("c2", other, b"two"))
        server.signal(signal.SIGHUP)
        server.wait_for_log("Reloaded clients.conf: 2 clients")
        assert fetch(server.host, server.port, other) == b"two"
        drop_in.write_text(client_section("c1", other, b"duplicate"))
        server.signal(signal.SIGHUP)
        log = server.wait_for_log("Not reloading clients.conf")
        assert "clients.d/c2.conf:1: client c1 is already defined at clients.conf:1" in log
        assert fetch(server.host, server.port, other) == b"two"
        assert fetch(server.host, server.port, tls_key) == SECRET
        assert server.process.poll() is None


def test_a_client_with_two_key_ids_is_served_to_both(tls_key: TLSKey) -> None:
    new = TLSKey(*generate_ed25519_keypair())
    stranger = TLSKey(*generate_ed25519_keypair())
    section = client_section("c1", new, SECRET).replace(
        f"key_id = {new.key_id}", f"key_id = {new.key_id.lower()}\n    {tls_key.key_id}"
    )
    with our_server(section) as server:
        assert fetch(server.host, server.port, new) == SECRET
        assert fetch(server.host, server.port, tls_key) == SECRET
        assert fetch(server.host, server.port, stranger) is None
