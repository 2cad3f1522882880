"""mandos-doctor on a real setup: keys, an initramfs read by lsinitramfs, crypttab, our server,
a LUKS2 image. One test per broken link (each breaks exactly that link) and a clean run."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from mandos.adapters.gnutls.keys import generate_ed25519_keypair, public_key_id
from mandos.doctor.checks import INITRAMFS_NEEDS
from mandos.doctor.main import main
from tests.client.peer import PgpKey, make_pgp_key
from tests.ports import free_port
from tests.server.conftest import TLSKey, client_section
from tests.server.ourserver import our_server

PASSWORD = b"correct horse battery staple"
OK_LINES = 9


@pytest.fixture(scope="module")
def pgp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgpKey]:
    key = make_pgp_key(tmp_path_factory.mktemp("doctor-pgp"))
    yield key
    key.kill_agent()


@pytest.fixture(scope="module")
def luks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    image = tmp_path_factory.mktemp("doctor-luks") / "root.img"
    with image.open("wb") as f:
        f.truncate(20 * 1024 * 1024)
    subprocess.run(
        ["cryptsetup", "luksFormat", "--type", "luks2", "--pbkdf", "pbkdf2",
         "--pbkdf-force-iterations", "1000", "--batch-mode", str(image), "--key-file", "-"],
        input=PASSWORD, check=True, timeout=120,
    )  # fmt: skip
    return image


class Setup:
    """A client's files in a temporary directory, each link correct until broken."""

    def __init__(self, base: Path, pgp: PgpKey, luks: Path) -> None:
        self.base = base
        self.keydir = base / "keys"
        self.keydir.mkdir(mode=0o700)
        shutil.copy(pgp.pubkey, self.keydir / "pubkey.txt")
        shutil.copy(pgp.seckey, self.keydir / "seckey.txt")
        priv, pub = generate_ed25519_keypair()
        self.tls = TLSKey(priv, pub)
        (self.keydir / "tls-privkey.pem").write_bytes(priv)
        (self.keydir / "tls-pubkey.pem").write_bytes(pub)
        for private in ("seckey.txt", "tls-privkey.pem"):
            (self.keydir / private).chmod(0o600)
        self.pgp = pgp
        self.luks = luks
        self.crypttab = base / "crypttab"
        self.crypttab.write_text(f"root {luks} none luks,keyscript=/usr/lib/mandos/plugin-runner\n")
        self.cmdline = base / "cmdline"
        self.cmdline.write_text("root=/dev/mapper/root ro ip=dhcp\n")
        (base / "initramfs-tools" / "conf.d").mkdir(parents=True)
        (base / "initramfs-tools" / "initramfs.conf").write_text("MODULES=most\nDEVICE=\n")
        self.initramfs = base / "initrd.img"
        self.make_initramfs([path for path, _ in INITRAMFS_NEEDS])

    def make_initramfs(self, paths: list[str]) -> None:
        tree = self.base / "initramfs-tree"
        shutil.rmtree(tree, ignore_errors=True)
        for path in paths:
            (tree / path).parent.mkdir(parents=True, exist_ok=True)
            (tree / path).write_text("x\n")
        listing = "\n".join(str(p.relative_to(tree)) for p in sorted(tree.rglob("*"))) + "\n"
        archive = subprocess.run(
            ["cpio", "--quiet", "-o", "-H", "newc"],
            cwd=tree, input=listing.encode(), capture_output=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        self.initramfs.write_bytes(gzip.compress(archive))  # compressed, as update-initramfs

    def section(self, secret: bytes | None = None, key: TLSKey | None = None) -> str:
        blob = self.pgp.encrypt(PASSWORD if secret is None else secret)
        return client_section("me", key or self.tls, blob)

    def args(self, connect: str, *extra: str) -> list[str]:
        return [
            f"--keydir={self.keydir}", f"--initramfs={self.initramfs}",
            f"--crypttab={self.crypttab}", f"--cmdline={self.cmdline}",
            f"--initramfs-conf={self.base / 'initramfs-tools'}",
            f"--runner-conf={self.base / 'none.conf'}", f"--connect={connect}",
            "--timeout=10", *extra,
        ]  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path, pgp: PgpKey, luks: Path) -> Setup:
    return Setup(tmp_path, pgp, luks)


def doctor(
    setup: Setup, capsys: pytest.CaptureFixture[str], conf: str | None = None
) -> tuple[int, list[str]]:
    with ExitStack() as stack:
        if conf is None:
            connect = f"127.0.0.1:{free_port()}"  # nothing listens there
        else:
            server = stack.enter_context(our_server(conf))
            connect = server.connect
        code = main(setup.args(connect))
    out = capsys.readouterr().out
    assert PASSWORD.decode() not in out
    return code, out.splitlines()


def failed(lines: list[str]) -> list[str]:
    return [
        line.split(":")[0].removeprefix("FAILED ") for line in lines if line.startswith("FAILED")
    ]


def test_clean_run(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = doctor(setup, capsys, setup.section())
    assert code == 0, lines
    assert len(lines) == OK_LINES
    assert all(line.startswith("ok ") for line in lines), lines


def test_json(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    with our_server(setup.section()) as server:
        assert main([*setup.args(server.connect), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [c["ok"] for c in found] == [True] * OK_LINES
    assert found[-1]["name"] == "opens the root device"


def test_missing_key(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    (setup.keydir / "tls-privkey.pem").unlink()
    code, lines = doctor(setup, capsys, setup.section())
    assert code == 1
    assert failed(lines) == ["keys"]
    assert "tls-privkey.pem" in lines[0]
    assert "mandos-keygen" in lines[0]


def test_key_readable_by_others(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    (setup.keydir / "seckey.txt").chmod(0o644)
    code, lines = doctor(setup, capsys, setup.section())
    assert code == 1
    assert failed(lines) == ["keys"]
    assert "chmod 0600" in lines[0]


def test_initramfs_without_the_keys(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.make_initramfs([p for p, _ in INITRAMFS_NEEDS if "conf.d/mandos" not in p])
    code, lines = doctor(setup, capsys, setup.section())
    assert code == 1
    assert failed(lines) == ["initramfs"]
    assert "lacks the OpenPGP public key" in lines[1]
    assert "update-initramfs -u" in lines[1]


def test_crypttab_without_the_keyscript(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.crypttab.write_text(f"root {setup.luks} none luks\n")
    code, lines = doctor(setup, capsys, setup.section())
    assert code == 1
    assert failed(lines) == ["crypttab"]
    assert "keyscript=/usr/lib/mandos/plugin-runner" in lines[2]


def test_no_server(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = doctor(setup, capsys, None)
    assert code == 1
    assert failed(lines) == ["server found"]
    assert "Connection refused" in lines[4]
    assert all(line.startswith("skip") for line in lines[5:])


def test_server_that_does_not_know_the_key(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    other = TLSKey(*generate_ed25519_keypair())
    code, lines = doctor(setup, capsys, setup.section(key=other))
    assert code == 1
    assert failed(lines) == ["server sends the secret"]
    key_id = str(public_key_id((setup.keydir / "tls-pubkey.pem").read_bytes()))
    assert key_id in lines[6]
    assert "mandos-ctl --unknown" in lines[6]


def test_wrong_secret(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = doctor(setup, capsys, setup.section(secret=b"an old password"))
    assert code == 1
    assert failed(lines) == ["opens the root device"]
    assert str(setup.luks) in lines[8]


def test_networking_turned_off(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.cmdline.write_text("ro ip=off\n")
    code, lines = doctor(setup, capsys, setup.section())
    assert code == 1
    assert "FAILED initramfs networking" in lines[3]


def test_not_root_friendly_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--timeout", "soon"])
    assert exc.value.code == 2
    assert os.linesep in capsys.readouterr().err


def test_a_broken_tls_key_is_one_line(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    (setup.keydir / "tls-privkey.pem").write_text("not a key\n")
    code, lines = doctor(setup, capsys, setup.section())
    assert code == 1
    assert failed(lines) == ["TLS handshake"]
    assert "cannot use the TLS key" in lines[5]
