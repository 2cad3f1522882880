"""Every refused command says why in one line, exits non-zero, and leaves the header as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.luks.conftest import ADMIN, KDF, Rig, add_slot, header_state, make_image


def refused(rig: Rig, image: Path, command: str, *args: str) -> str:
    """Run a command that must be refused; its one-line error. The header must not change."""
    before = header_state(image) if image.exists() else None
    records = sorted((rig.base / "records").glob("*")) if (rig.base / "records").exists() else []
    saved = {p: p.read_bytes() for p in records}
    done = rig.run(command, *args)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("mandos-luks: ")
    if before is not None:
        assert header_state(image) == before
    assert {p: p.read_bytes() for p in saved} == saved
    backups = rig.base / "backups"
    assert not backups.exists() or not any(backups.iterdir())  # no header copy left behind
    return lines[0]


def bind_args(rig: Rig, keyfile: Path, *images: Path) -> list[str]:
    return [
        f"--key-file={keyfile}", "--name=c", "--no-ssh", "--no-crypttab", "--no-initramfs",
        f"--output={rig.base / 'out.conf'}", *KDF, *[str(i) for i in images],
    ]  # fmt: skip


def test_wrong_existing_passphrase(rig: Rig) -> None:
    wrong = rig.base / "wrong.key"
    wrong.write_bytes(b"not it")
    msg = refused(rig, rig.image, "bind", *bind_args(rig, wrong, rig.image))
    assert "existing passphrase opens no key slot" in msg
    assert not (rig.base / "out.conf").exists()


def test_not_a_luks_volume(rig: Rig) -> None:
    plain = rig.base / "plain.img"
    plain.write_bytes(b"\0" * 4096 * 16)
    msg = refused(rig, plain, "bind", *bind_args(rig, rig.admin_file, plain))
    assert msg == f"mandos-luks: {plain}: not a LUKS volume"


def test_no_such_device(rig: Rig) -> None:
    missing = rig.base / "missing.img"
    msg = refused(rig, missing, "bind", *bind_args(rig, rig.admin_file, missing))
    assert "no such device" in msg


def test_one_bad_device_of_two_changes_neither(rig: Rig) -> None:
    good_before = header_state(rig.image)
    other = make_image(rig.base / "other.img", rig.version, b"a different passphrase")
    msg = refused(rig, other, "bind", *bind_args(rig, rig.admin_file, rig.image, other))
    assert str(other) in msg
    assert header_state(rig.image) == good_before


@pytest.mark.slow
def test_no_free_slot(rig: Rig) -> None:
    for n in range(1, 8 if rig.version == 1 else 32):
        add_slot(rig.image, f"extra {n}".encode())
    msg = refused(rig, rig.image, "bind", *bind_args(rig, rig.admin_file, rig.image))
    assert "no free key slot" in msg


def test_bound_twice(rig: Rig) -> None:
    rig.bind()
    msg = refused(rig, rig.image, "bind", *bind_args(rig, rig.admin_file, rig.image))
    assert "already bound to Mandos (slot 1)" in msg


def test_unbind_a_slot_that_is_not_ours(rig: Rig) -> None:
    rig.bind()
    add_slot(rig.image, b"someone else's")
    msg = refused(rig, rig.image, "unbind", "--slot=2", str(rig.image))
    assert "key slot 2 is not a Mandos binding" in msg
    msg = refused(rig, rig.image, "unbind", "--slot=0", str(rig.image))
    assert "key slot 0 is not a Mandos binding" in msg


def test_unbind_an_unbound_volume(rig: Rig) -> None:
    msg = refused(rig, rig.image, "unbind", str(rig.image))
    assert "not bound to Mandos" in msg


def test_unbind_the_last_slot(rig: Rig) -> None:
    rig.bind()
    kill = ["cryptsetup", "luksKillSlot", "--batch-mode", str(rig.image), "0"]
    import subprocess

    subprocess.run(kill, check=True, capture_output=True)  # only the Mandos slot is left
    msg = refused(rig, rig.image, "unbind", str(rig.image))
    assert "is the last one" in msg


def test_rotate_an_unbound_volume(rig: Rig) -> None:
    msg = refused(
        rig, rig.image, "rotate", f"--key-file={rig.admin_file}", "--connect=127.0.0.1:9",
        "--no-ssh", "--no-initramfs", *KDF, str(rig.image),
    )  # fmt: skip
    assert "not bound to Mandos; use bind" in msg


def test_finish_without_a_pending_rotation(rig: Rig) -> None:
    rig.bind()
    msg = refused(rig, rig.image, "rotate", "--finish", "--connect=127.0.0.1:9", str(rig.image))
    assert "no rotation is pending" in msg


def test_bad_command_line(rig: Rig) -> None:
    msg = refused(rig, rig.image, "rotate", "--timeout=soon", str(rig.image))
    assert "is not a duration" in msg
    msg = refused(rig, rig.image, "test", "--connect=nowhere", str(rig.image))
    assert "--connect" in msg


def test_unbind_removes_slot_and_record(rig: Rig) -> None:
    rig.bind()
    done = rig.run("unbind", str(rig.image))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == f"{rig.image}: removed key slot 1 and its Mandos record"
    assert rig.run("list", str(rig.image)).stdout == ""
    import subprocess

    check = ["cryptsetup", "open", "--test-passphrase", "--key-file=-", str(rig.image)]
    assert subprocess.run(check, input=ADMIN, capture_output=True).returncode == 0


def test_a_failure_after_the_slot_was_added_restores_every_header(rig: Rig) -> None:
    """The section cannot be written (--output is a directory): both new slots are undone."""
    other = make_image(rig.base / "other.img", rig.version)
    before = header_state(other)
    outdir = rig.base / "a-directory"
    outdir.mkdir()
    args = bind_args(rig, rig.admin_file, rig.image, other)
    args[args.index(f"--output={rig.base / 'out.conf'}")] = f"--output={outdir}"
    msg = refused(rig, rig.image, "bind", *args)
    assert str(outdir) in msg
    assert header_state(other) == before
    assert rig.run("list", str(rig.image), str(other)).stdout == ""


def test_a_broken_record_directory_restores_the_header(rig: Rig) -> None:
    blocker = rig.base / "records-is-a-file"
    blocker.write_text("")
    before = header_state(rig.image)
    done = rig.run("bind", f"--record-dir={blocker}", *bind_args(rig, rig.admin_file, rig.image))
    if rig.version == 1:
        assert done.returncode != 0
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert header_state(rig.image) == before
    else:  # LUKS2 keeps its record in the header: the record directory is never used
        assert done.returncode == 0, done.stderr
