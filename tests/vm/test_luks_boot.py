"""A VM boots unattended from a disk bound by mandos-luks, and again after a rotation (issue 12).

The cached disk is copied (it carries the admin's passphrase in slot 0); ``mandos-luks bind``
adds the Mandos slot with the keys the session's initramfs already holds, so no initramfs is
rebuilt (``--no-crypttab --no-initramfs``; our hook hands the password to cryptroot-unlock).
After ``rotate``, with the server reloaded meanwhile, the guest boots with the new slot and the
first Mandos passphrase opens nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.luks.conftest import (
    KDF,
    LUKS,
    fetch_with_our_client,
    finish,
    opens,
    serve,
    wait_for_file,
)
from tests.server.ourserver import RunningServer, our_server
from tests.vm import build, jobs, qemu
from tests.vm.test_boot import BOOT_TIMEOUT, VmSetup

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(1500)]


def boot_unattended(setup: VmSetup, disk: Path, server: RunningServer, console: Path) -> float:
    """Boot DISK with SERVER reachable; seconds to the root's marker."""
    files = qemu.BootFiles(setup.files.vmlinux, setup.files.initrd, disk)
    with qemu.boot(files, qemu.connect_cmdline(), qemu.user_netdev(server.port), console) as g:
        g.wait_for("cryptroot: set up successfully", BOOT_TIMEOUT)
        marker = g.wait_for(build.ROOT_MARKER, BOOT_TIMEOUT)
        g.wait_exit(60)
    return marker


def bound_and_rotated(tmp_path: Path, vm_setup: VmSetup) -> str:
    """Job: a copy of the disk bound by mandos-luks boots; rotated, it boots again."""
    disk = tmp_path / "disk.img"
    shutil.copyfile(vm_setup.files.disk, disk)
    keydir = tmp_path / "keys"
    shutil.copytree(vm_setup.keys.keydir, keydir)
    admin = keydir / "passphrase"
    common = [f"--keydir={keydir}", f"--record-dir={tmp_path / 'rec'}",
              f"--backup-dir={tmp_path / 'bk'}"]  # fmt: skip
    gen1 = tmp_path / "gen1.conf"
    bind = subprocess.run(
        [LUKS, "bind", *common, "--name=vmtest", f"--key-file={admin}", "--no-ssh",
         "--no-crypttab", "--no-initramfs", f"--output={gen1}", *KDF, str(disk)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert bind.returncode == 0, bind.stderr
    with our_server("") as server:
        serve(server, gen1.read_text())
        old = fetch_with_our_client(keydir, server.connect).stdout
        first = boot_unattended(vm_setup, disk, server, tmp_path / "console1.log")
        assert "Sending secret to vmtest" in server.log_text()

        gen2 = tmp_path / "gen2.conf"
        rotate = subprocess.Popen(
            [LUKS, "rotate", *common, f"--connect={server.connect}", f"--output={gen2}",
             "--timeout=PT120S", "--retry=0.5", "--no-ssh", "--no-initramfs", *KDF, str(disk)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            serve(server, wait_for_file(gen2))
        finally:
            status, _, err = finish(rotate)
        assert status == 0, err
        assert not opens(disk, old)
        second = boot_unattended(vm_setup, disk, server, tmp_path / "console2.log")
        new = fetch_with_our_client(keydir, server.connect).stdout
        assert opens(disk, new, slot=2)
    return f"vm(luks): bound disk booted, root at {first:.1f} s; after rotate at {second:.1f} s"


def test_bound_by_mandos_luks_boots_and_again_after_rotate(vm_jobs: jobs.Scheduler) -> None:
    print(f"\n{vm_jobs.result('luks:bound')}")


def crypttab_by_bind(tmp_path: Path, vm_setup: VmSetup) -> str:
    """Job: bind's crypttab edit in a real initramfs; it boots unattended.

    The cached chroot, made writable by an overlay (``build.chroot_overlay``) instead of a copy,
    names the root by UUID in its crypttab (no options); bind adds ``initramfs`` there, and
    Debian's mkinitramfs builds the image from it. (Adding
    ``keyscript=plugin-runner`` instead failed here: cryptsetup passes the keyscript "none".)
    The guest boots once the overlay is gone: the cached chroot's lock is not held meanwhile.
    """
    disk = tmp_path / "disk.img"
    shutil.copyfile(vm_setup.files.disk, disk)
    uuid = subprocess.run(
        ["cryptsetup", "luksUUID", str(disk)], capture_output=True, text=True, check=True
    ).stdout.strip()
    cached = build.ensure_chroot(build.ensure_kernel())  # takes the chroot lock itself
    with build.chroot_overlay(cached, tmp_path / "overlay", "chroot") as root:
        section = _bind_in_chroot(vm_setup, disk, uuid, root, tmp_path)
        initrd = build.build_initramfs(
            root, build.ensure_kernel(), vm_setup.keys, tmp_path / "initrd.img",
            lock="chroot-overlay",
        ).path  # fmt: skip
    setup = VmSetup(qemu.BootFiles(vm_setup.files.vmlinux, initrd, disk), vm_setup.keys, "overlay")
    with our_server("") as server:
        serve(server, section)
        at = boot_unattended(setup, disk, server, tmp_path / "console.log")
        assert "Sending secret to vmtest" in server.log_text()
    return f"vm(luks crypttab): root at {at:.1f} s"


def test_crypttab_written_by_bind_boots(vm_jobs: jobs.Scheduler) -> None:
    """bind's crypttab edit in a real initramfs: it boots unattended."""
    print(f"\n{vm_jobs.result('luks:crypttab')}")


def _bind_in_chroot(vm_setup: VmSetup, disk: Path, uuid: str, root: Path, tmp_path: Path) -> str:
    """``mandos-luks bind`` with the chroot's crypttab; the server's section it printed."""
    crypttab = root / "etc" / "crypttab"
    crypttab.write_text(f"{build.MAPPER_NAME} UUID={uuid} none luks\n")
    keydir = tmp_path / "keys"
    shutil.copytree(vm_setup.keys.keydir, keydir)
    section = tmp_path / "section.conf"
    bind = subprocess.run(
        [LUKS, "bind", f"--keydir={keydir}", f"--record-dir={tmp_path / 'rec'}",
         f"--backup-dir={tmp_path / 'bk'}", "--name=vmtest", f"--key-file={keydir / 'passphrase'}",
         "--no-ssh", f"--crypttab={crypttab}", "--no-initramfs", f"--output={section}", *KDF,
         str(disk)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert bind.returncode == 0, bind.stderr
    assert crypttab.read_text() == f"{build.MAPPER_NAME} UUID={uuid} none luks,initramfs\n"
    return section.read_text()
