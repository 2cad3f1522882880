"""Debian 13 (trixie) as the client: its kernel, initramfs-tools, cryptsetup and Python 3.13
with our hook unlock the LUKS2 root from our server (issue 15).

The chroot is made by mmdebstrap with trixie's ``linux-image-amd64`` installed
(``build.ensure_trixie_guest``, cached); our package goes in with ``integration/install --root``
from wheels built by a host Python 3.13, and Debian's mkinitramfs packs it. The disk and keys
are the bookworm test's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.server.ourserver import our_server
from tests.vm import build, jobs, qemu
from tests.vm.test_boot import (
    BOOT_TIMEOUT,
    PROMPT,
    _missing_tools,
    boot_to_the_root,
    clients_conf,
)

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(1800)]


@dataclass(frozen=True)
class Trixie:
    """What the trixie boots share: kernel, initramfs and disk, the keys, the kernel release."""

    files: qemu.BootFiles
    keys: build.ClientKeys
    release: str


def make_trixie(work: Path) -> Trixie:
    """The trixie chroot and kernel (cached) and an initramfs with our hook (in ``work``)."""
    missing = _missing_tools()
    if missing:
        pytest.skip(f"trixie VM test needs {', '.join(missing)}")
    t0 = time.monotonic()
    root, kernel = build.ensure_trixie_guest()
    python313 = build.host_python_like(root)
    if python313 is None:
        pytest.skip("trixie VM test needs a host Python 3.13 with pip, to build its wheels")
    keys = build.ensure_keys()
    disk = build.ensure_disk(keys)
    t1 = time.monotonic()
    out = work / "initrd.img"
    initrd = build.build_initramfs(
        root, kernel, keys, out, lock="chroot-trixie", host_python=python313
    )
    print(
        f"\nvm-trixie: kernel {kernel.release}; cached parts in {t1 - t0:.1f} s; initramfs in "
        f"{initrd.seconds:.1f} s, {initrd.path.stat().st_size / 1e6:.1f} MB"
    )
    return Trixie(qemu.BootFiles(kernel.vmlinux, initrd.path, disk), keys, kernel.release)


def boot_enabled(work: Path, trixie: Trixie) -> str:
    """Job: the enabled client's root opens, under trixie's kernel."""
    unlocked, marker, text = boot_to_the_root(trixie.files, trixie.keys, work / "console")
    assert f"Linux version {trixie.release}" in text
    return f"unlocked at {unlocked:.1f} s, root marker at {marker:.1f} s"


def boot_disabled(work: Path, trixie: Trixie) -> str:
    """Job: the disabled client's guest stays at cryptsetup's prompt, refused by the server."""
    with (
        our_server(clients_conf(trixie.keys, enabled="False")) as refusing,
        qemu.boot(trixie.files, qemu.connect_cmdline(), qemu.user_netdev(refusing.port),
                  work / "console") as locked,
    ):  # fmt: skip
        prompt = locked.wait_for(PROMPT, BOOT_TIMEOUT)
        refusing.wait_for_log("is disabled", timeout=BOOT_TIMEOUT)
        assert "set up successfully" not in locked.text()
        assert build.ROOT_MARKER not in locked.text()
        assert "Sending secret" not in refusing.log_text()
    return f"the disabled guest's prompt at {prompt:.1f} s"


def test_trixie_unlocks_and_a_disabled_client_stays_locked(vm_jobs: jobs.Scheduler) -> None:
    """Two guests (two jobs, side by side with the other modules' guests): the enabled
    client's root opens; the disabled one's stays at cryptsetup's prompt while the server
    refuses it."""
    unlocked = vm_jobs.result("trixie:enabled")
    locked = vm_jobs.result("trixie:disabled")
    print(f"\nvm-trixie: {unlocked}; {locked}")
