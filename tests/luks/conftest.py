"""LUKS1 and LUKS2 image files, client keys, and mandos-luks run as the real console script.

Every image is made by the real ``cryptsetup luksFormat`` with PBKDF2 at 1000 iterations (and
mandos-luks adds its slots with the same cheap settings), so a test takes seconds. No
device-mapper is needed: luksAddKey, token import, luksKillSlot and --test-passphrase work on
image files.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import ED25519, OurKeys, make_our_keys
from tests.keyfiles import client_key_args
from tests.server.ourserver import RunningServer, our_server

ADMIN = b"the admin's own passphrase"
KDF = ("--pbkdf=pbkdf2", "--pbkdf-force-iterations=1000")
NEW_KEYS = ("--key-type=ed25519", "--subkey-type=cv25519")
BIN = Path(sys.executable).parent
LUKS = str(BIN / "mandos-luks")
CLIENT = str(BIN / "mandos-client")


def make_image(path: Path, version: int, passphrase: bytes = ADMIN) -> Path:
    """A 20 MiB sparse LUKS image with PASSPHRASE in slot 0."""
    with path.open("wb") as f:
        f.truncate(20 << 20)
    args = ["cryptsetup", "luksFormat", "--batch-mode", f"--type=luks{version}", *KDF]
    subprocess.run([*args, "--key-file=-", str(path)], input=passphrase, check=True)
    return path


def opens(image: Path, secret: bytes, slot: int | None = None) -> bool:
    """Whether SECRET opens IMAGE (or its key slot SLOT), by cryptsetup itself."""
    args = ["cryptsetup", "open", "--test-passphrase", "--key-file=-", str(image)]
    if slot is not None:
        args.append(f"--key-slot={slot}")
    return subprocess.run(args, input=secret, capture_output=True, check=False).returncode == 0


def header_state(image: Path) -> tuple[str, str]:
    """A hash of the whole image and its luksDump: equal means byte for byte unchanged."""
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    dump = subprocess.run(["cryptsetup", "luksDump", str(image)], capture_output=True, check=False)
    return digest, dump.stdout.decode()


def add_slot(image: Path, new: bytes, existing: bytes = ADMIN) -> None:
    """Add a key slot by hand (plain cryptsetup), as an admin would."""
    keyfile = image.with_suffix(".existing")
    keyfile.write_bytes(existing)
    subprocess.run(
        [
            "cryptsetup",
            "luksAddKey",
            "--batch-mode",
            *KDF,
            f"--key-file={keyfile}",
            str(image),
            "-",
        ],
        input=new,
        check=True,
        capture_output=True,
    )
    keyfile.unlink()


@dataclass
class Rig:
    """One test's image(s), key directory, record and backup directories."""

    base: Path
    keydir: Path
    version: int

    @property
    def image(self) -> Path:
        """The test's main image."""
        return self.base / "disk.img"

    @property
    def admin_file(self) -> Path:
        """A file holding the image's existing (admin) passphrase."""
        path = self.base / "admin.key"
        if not path.exists():
            path.write_bytes(ADMIN)
        return path

    def common(self) -> list[str]:
        """--keydir, --record-dir and --backup-dir under the test's directory."""
        return [
            f"--keydir={self.keydir}",
            f"--record-dir={self.base / 'records'}",
            f"--backup-dir={self.base / 'backups'}",
        ]

    def run(
        self, command: str, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``mandos-luks COMMAND`` with the test's paths; never leaves it running."""
        argv = [LUKS, command, *self.common(), *args]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
            check=False,
        )  # fmt: skip

    def start(self, command: str, *args: str) -> subprocess.Popen[str]:
        """Start ``mandos-luks COMMAND`` in the background (see :func:`finish`)."""
        argv = [LUKS, command, *self.common(), *args]
        return subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def bind(self, *images: Path, name: str = "client1") -> str:
        """Bind IMAGES (default: the main one); the section it wrote."""
        section = self.base / "bind.conf"
        done = self.run(
            "bind", f"--name={name}", f"--key-file={self.admin_file}", "--no-ssh",
            "--no-crypttab", "--no-initramfs", f"--output={section}", *KDF,
            *[str(i) for i in images or (self.image,)],
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return section.read_text()


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    """Wait for a background mandos-luks; SIGKILL at the deadline. (status, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
    return proc.returncode, out, err


def wait_for_file(path: Path, timeout: float = 60) -> str:
    """Wait until PATH exists and is not empty; its text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            time.sleep(0.1)  # written atomically, but give the writer's rename a moment
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def serve(server: RunningServer, section: str, name: str = "client.conf") -> None:
    """Put SECTION (checker always true) in the server's clients.d, reload, wait for it."""
    dropins = server.configdir / "clients.d"
    dropins.mkdir(exist_ok=True)
    before = server.log_text().count("Reloaded clients.conf")
    (dropins / name).write_text(section.rstrip("\n") + "\nchecker = true\n")
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while server.log_text().count("Reloaded clients.conf") <= before:
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.05)


def fetch_with_our_client(keydir: Path, *connect: str) -> subprocess.CompletedProcess[bytes]:
    """Our mandos-client, once, at each CONNECT (no interface, no hooks); stdout is the secret."""
    hooks = keydir.parent / "no-hooks"
    hooks.mkdir(exist_ok=True)
    argv = [
        CLIENT, *(f"--connect={c}" for c in connect), *client_key_args(keydir), "--interface=none",
        f"--network-hook-dir={hooks}", "--retry=1",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.fixture(scope="session")
def session_keys(tmp_path_factory: pytest.TempPathFactory) -> OurKeys:
    """Ed25519/Cv25519 client keys from our keygen, made once."""
    return make_our_keys(tmp_path_factory.mktemp("luks-keys"), *ED25519)


@pytest.fixture(params=[1, 2], ids=["luks1", "luks2"])
def rig(request: pytest.FixtureRequest, tmp_path: Path, session_keys: OurKeys) -> Rig:
    """A fresh image of each LUKS version, and a copy of the session's client keys."""
    keydir = tmp_path / "keys"
    shutil.copytree(session_keys.keydir, keydir)
    r = Rig(tmp_path, keydir, request.param)
    make_image(r.image, request.param)
    return r


@pytest.fixture
def server() -> Iterator[RunningServer]:
    """Our server with an empty clients.conf; clients arrive as clients.d drop-ins."""
    with our_server("") as s:
        yield s
