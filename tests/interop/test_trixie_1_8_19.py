"""Debian 13's Mandos 1.8.19 against ours: each client with the other's server, its mandos-ctl
driving our server (the partners run in a trixie chroot: tests/interop/trixie.py)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.interop.reference import PrivateSystemBus, run_bounded
from tests.interop.trixie import (
    PASSWORD,
    VERSION,
    WORK,
    TrixieKeys,
    run_in_chroot,
    run_trixie_client,
    trixie_keys,
    trixie_root,
    trixie_server,
)
from tests.keyfiles import client_key_args
from tests.server.ourserver import our_server

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> TrixieKeys:
    """The chroot client's keys and trixie keygen's section (builds the chroot on first use)."""
    try:
        root = trixie_root()
    except RuntimeError as exc:  # no mmdebstrap, no mirror
        pytest.fail(f"trixie chroot unavailable: {exc}", pytrace=False)
    status = (root / "var/lib/dpkg/status").read_text()
    assert "Package: mandos-client\nStatus: install ok installed" in status
    assert f"Version: {VERSION}-" in status
    return trixie_keys(tmp_path_factory.mktemp("trixie-keys"))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    tmp_path.chmod(0o755)
    return tmp_path


def client_name(section: str) -> str:
    return section.split("]", 1)[0].removeprefix("[")


@pytest.mark.timeout(300)
def test_trixie_client_gets_its_secret_from_our_server(keys: TrixieKeys, work: Path) -> None:
    with our_server(keys.section) as server:
        done = run_trixie_client(work, server.connect, timeout=120)
        assert (done.returncode, done.stdout) == (0, PASSWORD), done.stderr.decode()[-3000:]
        server.wait_for_log(f"Sending secret to {client_name(keys.section)}")


@pytest.mark.timeout(300)
def test_our_client_gets_its_secret_from_the_trixie_server(keys: TrixieKeys, work: Path) -> None:
    with trixie_server(keys.section, work) as server:
        done = run_bounded(
            [Path(sys.executable).with_name("mandos-client"), f"--connect={server.connect}",
             "--interface=none", "--network-hook-dir=/nonexistent",
             *client_key_args(keys.keydir)],
            env=dict(os.environ), timeout=120,
        )  # fmt: skip
        assert (done.returncode, done.stdout) == (0, PASSWORD), done.stderr.decode()[-3000:]
        server.wait_for_log(f"Sending secret to {client_name(keys.section)}")


@pytest.mark.timeout(300)
def test_trixie_mandos_ctl_drives_our_server(keys: TrixieKeys, work: Path) -> None:
    name = client_name(keys.section)
    with (
        PrivateSystemBus() as bus,
        our_server(keys.section, use_dbus=True, env=bus.env) as server,
    ):
        assert bus.dir is not None
        # The chroot sees the bus through a hard link to its socket in the test's directory.
        os.link(bus.dir / "system_bus_socket", work / "bus")
        env = {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={WORK}/bus"}

        def ctl(*args: str) -> str:
            done = run_in_chroot(work, ["mandos-ctl", *args], env=env, timeout=60)
            assert done.returncode == 0, done.stderr.decode()
            return done.stdout.decode()

        deadline = time.monotonic() + 30  # the server claims its bus name after it listens
        while run_in_chroot(work, ["mandos-ctl"], env=env, timeout=60).returncode != 0:
            assert time.monotonic() < deadline, "our server never appeared on the bus"
            time.sleep(0.2)
        listing = ctl()
        assert listing.split("\n")[1].split()[:2] == [name, "Yes"], listing
        ctl("--disable", name)
        server.wait_for_log(f"Disabling client {name}: on request (D-Bus)")
        assert ctl().split("\n")[1].split()[:2] == [name, "No"]
        ctl("--enable", name)
        server.wait_for_log(f"Enabling client {name}: on request (D-Bus)")
        done = run_in_chroot(work, ["mandos-ctl", "--is-enabled", name], env=env, timeout=60)
        assert done.returncode == 0
        assert '"KeyID"' in ctl("--dump-json", name)


@pytest.mark.timeout(300)
def test_a_section_without_key_is_skipped_with_a_warning_by_both(
    keys: TrixieKeys, work: Path
) -> None:
    """Mandos 1.8.17 and later: a section with neither key_id nor fingerprint is ignored."""
    conf = "[nokey]\nhost = nowhere\nsecret = aGVsbG8=\n\n" + keys.section
    with trixie_server(conf, work / "ref") as theirs:
        done = run_trixie_client(work, theirs.connect, timeout=120)
        assert done.stdout == PASSWORD
        assert "nokey" in theirs.log()
    with our_server(conf, debug=False) as ours:
        done = run_trixie_client(work, ours.connect, timeout=120)
        assert done.stdout == PASSWORD
        log = ours.log_text()
    assert "WARNING: clients.conf:1: client nokey: no key_id or fingerprint; section skipped" in log
    assert "1 clients loaded" in log
