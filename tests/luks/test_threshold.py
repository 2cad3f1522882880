"""bind and rotate with --threshold K --shares N --output-dir DIR: one share section per server.

Real cryptsetup on image files (LUKS2 only: the LUKS1 records are the same as without a
threshold, tests/luks/test_bind.py), two of our servers each serving one share, and our
mandos-client (several --connect) or mandos-luks itself combining them.
"""

from __future__ import annotations

import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.luks.conftest import (
    ADMIN,
    KDF,
    Rig,
    fetch_with_our_client,
    finish,
    header_state,
    opens,
    serve,
)
from tests.server.ourserver import RunningServer, our_server

pytestmark = pytest.mark.parametrize("rig", [2], indirect=True, ids=["luks2"])

SPLIT = ("--threshold=2", "--shares=3")


@pytest.fixture
def two_servers() -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two of our servers, empty; the shares arrive as clients.d drop-ins."""
    with our_server("") as a, our_server("") as b:
        yield a, b


def bind_split(rig: Rig, shares: Path) -> subprocess.CompletedProcess[str]:
    return rig.run(
        "bind", "--name=client1", f"--key-file={rig.admin_file}", "--no-ssh", "--no-crypttab",
        "--no-initramfs", *SPLIT, f"--output-dir={shares}", *KDF, str(rig.image),
    )  # fmt: skip


def share_file(shares: Path, index: int) -> Path:
    return shares / f"client1.share-{index}.conf"


def combined_by_our_client(keydir: Path, *servers: RunningServer) -> bytes:
    """What our mandos-client prints given every server as a --connect."""
    done = fetch_with_our_client(keydir, *(s.connect for s in servers))
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_bind_writes_one_share_section_per_server_and_two_open_the_volume(
    rig: Rig, two_servers: tuple[RunningServer, RunningServer]
) -> None:
    shares = rig.base / "shares"
    done = bind_split(rig, shares)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # no single section anywhere
    for i in (1, 2, 3):
        path = share_file(shares, i)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text()
        assert text.startswith(f"# share {i} of 3, threshold 2\n[client1]\n"), text
        assert str(path) in done.stderr
    assert "(3 shares, any 2 rebuild the passphrase)" in done.stderr
    a, b = two_servers
    serve(a, share_file(shares, 1).read_text())
    serve(b, share_file(shares, 3).read_text())
    secret = combined_by_our_client(rig.keydir, a, b)
    assert len(secret) == 64
    assert opens(rig.image, secret, slot=1)
    assert opens(rig.image, ADMIN, slot=0)

    tested = rig.run("test", f"--connect={a.connect}", f"--connect={b.connect}", str(rig.image))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    lines = tested.stdout.splitlines()
    assert lines[0].startswith(f"{a.connect}: fetch: ok; decrypt: ok; share 1 of 3 (threshold 2)")
    assert lines[1].startswith(f"{b.connect}: fetch: ok; decrypt: ok; share 3 of 3 (threshold 2)")
    assert lines[2:] == [f"shares from {a.connect}, {b.connect}: {rig.image}: open: ok"]

    alone = rig.run("test", f"--connect={a.connect}", str(rig.image))
    assert alone.returncode == 1
    assert "combine: failed: too few shares of one set for its threshold" in alone.stdout


def test_bind_refuses_to_overwrite_share_files_and_changes_nothing(rig: Rig) -> None:
    shares = rig.base / "shares"
    shares.mkdir()
    share_file(shares, 2).write_text("an older share\n")
    before = header_state(rig.image)
    done = bind_split(rig, shares)
    assert done.returncode == 65
    assert done.stderr == f"mandos-luks: refusing to overwrite {share_file(shares, 2)}\n"
    assert header_state(rig.image) == before
    assert share_file(shares, 2).read_text() == "an older share\n"
    assert not share_file(shares, 1).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threshold=2", "--output-dir=x"], "--threshold, --shares and --output-dir go together"),
        (["--threshold=4", "--shares=3", "--output-dir=x"], "--threshold/--shares: "),
        ([*SPLIT, "--output-dir=x", "--output=y"], "--output and --output-dir exclude each other"),
    ],
)
def test_threshold_options_go_together(rig: Rig, args: list[str], message: str) -> None:
    before = header_state(rig.image)
    for command in ("bind", "rotate"):
        done = rig.run(command, *args, "--key-file=-", str(rig.image))
        assert done.returncode == 64, done.stderr
        assert done.stderr.startswith(f"mandos-luks: {message}"), done.stderr
    assert header_state(rig.image) == before


def test_rotate_writes_new_shares_and_retires_the_old_slot_once_two_serve_them(
    rig: Rig, two_servers: tuple[RunningServer, RunningServer]
) -> None:
    shares = rig.base / "shares"
    assert bind_split(rig, shares).returncode == 0
    a, b = two_servers
    serve(a, share_file(shares, 1).read_text())
    serve(b, share_file(shares, 2).read_text())
    old = combined_by_our_client(rig.keydir, a, b)
    proc = rig.start(
        "rotate", f"--connect={a.connect}", f"--connect={b.connect}", *SPLIT,
        f"--output-dir={shares}", "--retry=0.3", "--timeout=PT90S", "--no-ssh",
        "--no-initramfs", *KDF, str(rig.image),
    )  # fmt: skip
    try:
        # Phase 1 unlocked the volume with the two old shares and replaced the share files,
        # keeping the old ones as backups.
        backup = shares / "client1.share-3.conf.~1~"
        for _ in range(600):
            if backup.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert backup.exists(), finish(proc)
        assert opens(rig.image, old)  # both slots until two servers serve the new shares
        serve(a, share_file(shares, 2).read_text())  # one new share, one old: no set of two
        serve(b, share_file(shares, 3).read_text())
        status, _out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert status == 0, err
    assert "removed key slot 1 (generation 1)" in err
    new = combined_by_our_client(rig.keydir, a, b)
    assert new != old
    assert opens(rig.image, new)
    assert not opens(rig.image, old)
