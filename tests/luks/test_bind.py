"""bind on LUKS1 and LUKS2 images: our server serves the secret, our client's opens the image."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.luks.conftest import (
    ADMIN,
    KDF,
    Rig,
    fetch_with_our_client,
    make_image,
    opens,
    serve,
)
from tests.server.ourserver import RunningServer


def test_bind_then_our_server_serves_a_secret_that_opens_the_image(
    rig: Rig, server: RunningServer
) -> None:
    section = rig.bind()
    assert "[client1]" in section
    assert "secret =" in section
    serve(server, section)
    done = fetch_with_our_client(rig.keydir, server.connect)
    assert done.returncode == 0, done.stderr
    secret = done.stdout
    assert secret != ADMIN
    assert len(secret) == 64
    assert secret.isascii()
    assert secret.isalnum()
    assert opens(rig.image, secret, slot=1)
    assert opens(rig.image, ADMIN, slot=0)  # the admin's passphrase still works
    server.wait_for_log("Sending secret to client1")


def test_list_shows_the_binding(rig: Rig) -> None:
    rig.bind()
    done = rig.run("list", str(rig.image))
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith(f"{rig.image}: slot 1 client client1 key_id ")
    assert " generation 1 created " in line
    rows = json.loads(rig.run("list", "--json", str(rig.image)).stdout)
    assert [(r["slot"], r["client"], r["generation"], r["state"]) for r in rows] == [
        (1, "client1", 1, "active")
    ]


def test_the_record_lives_where_the_format_allows(rig: Rig) -> None:
    rig.bind()
    records = rig.base / "records"
    if rig.version == 2:
        import subprocess

        dump = subprocess.run(["cryptsetup", "luksDump", str(rig.image)], capture_output=True)
        assert b"mandos" in dump.stdout  # the token type is visible in luksDump
        assert not records.exists() or not any(records.iterdir())
    else:
        (record,) = records.iterdir()
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        assert stat.S_IMODE(records.stat().st_mode) == 0o700
        assert json.loads(record.read_text())["bindings"][0]["client"] == "client1"


def test_bind_several_devices_at_once_shares_one_secret(rig: Rig, server: RunningServer) -> None:
    second = make_image(rig.base / "second.img", rig.version)
    section = rig.bind(rig.image, second)
    serve(server, section)
    done = fetch_with_our_client(rig.keydir, server.connect)
    assert done.returncode == 0, done.stderr
    assert opens(rig.image, done.stdout)
    assert opens(second, done.stdout)


def test_bind_makes_missing_keys_and_edits_crypttab_and_rebuilds(tmp_path: Path) -> None:
    rig = Rig(tmp_path, tmp_path / "newkeys", 2)
    make_image(rig.image, 2)
    crypttab = tmp_path / "crypttab"
    crypttab.write_text(
        "# <target> <source> <key> <options>\n"
        f"cryptroot {rig.image} none luks,discard\n"
        "other UUID=0000 none luks\n"
    )
    marker = tmp_path / "rebuilt"
    done = rig.run(
        "bind", "--name=fresh", f"--key-file={rig.admin_file}", "--no-ssh",
        "--key-type=ed25519", "--subkey-type=cv25519", f"--crypttab={crypttab}",
        f"--update-initramfs=touch {marker}", f"--output={tmp_path / 's.conf'}", *KDF,
        str(rig.image),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for name in ("seckey.txt", "pubkey.txt", "tls-privkey.pem", "tls-pubkey.pem"):
        assert stat.S_IMODE((rig.keydir / name).stat().st_mode) == 0o600
    lines = crypttab.read_text().splitlines()
    assert lines[1] == f"cryptroot {rig.image} none luks,discard,initramfs"
    assert lines[0] == "# <target> <source> <key> <options>"
    assert lines[2] == "other UUID=0000 none luks"
    assert marker.exists()
    assert "cryptroot: added the initramfs option" in done.stderr
    assert "rebuilt the initramfs" in done.stderr
    assert stat.S_IMODE((tmp_path / "s.conf").stat().st_mode) == 0o600


def test_section_on_stdout_when_no_output(rig: Rig) -> None:
    done = rig.run(
        "bind", f"--key-file={rig.admin_file}", "--name=c", "--no-ssh", "--no-crypttab",
        "--no-initramfs", *KDF, str(rig.image),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[c]\nhost = c\nkey_id = ")
    assert "added key slot 1" in done.stderr
