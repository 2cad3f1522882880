"""dracut with systemd in the initramfs: our 90mandos module's password-agent answers
systemd-cryptsetup's question with the password from our server (issue 15).

The chroot is Debian 13 with dracut instead of initramfs-tools (``build.ensure_dracut_guest``,
cached); our package goes in with ``integration/install --root`` and Debian's real dracut builds
a host-only image with the systemd, systemd-cryptsetup and systemd-networkd modules and ours.
The LUKS root is named on the kernel command line (``rd.luks.name=``); ``ip=`` configures eth0
(systemd-network-generator turns it into a .network file for systemd-networkd); the client is
pointed at the guestfwd server by a drop-in for ask-password-mandos.service, as an admin would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.server.ourserver import our_server
from tests.vm import build, jobs, qemu
from tests.vm.test_boot import _missing_tools, clients_conf

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(1800)]

#: systemd-cryptsetup's question, as systemd-tty-ask-password-agent shows it on the console.
PROMPT = "Please enter passphrase for disk cryptroot"
#: systemd in the initramfs under TCG is much slower than initramfs-tools (unit start-up, udev):
#: 3 to 5.5 minutes to the root on the loaded 2-core machine (load 5), two guests at once.
BOOT_TIMEOUT = 600.0
QEMU_LIMIT = BOOT_TIMEOUT + 20


@dataclass(frozen=True)
class Dracut:
    """What the dracut boots share: kernel, initramfs and disk, keys, kernel command line."""

    files: qemu.BootFiles
    keys: build.ClientKeys
    cmdline: str


def make_dracut(work: Path) -> Dracut:
    """The dracut chroot and kernel (cached) and a host-only image with our module (in ``work``)."""
    missing = _missing_tools()
    if missing:
        pytest.skip(f"dracut VM test needs {', '.join(missing)}")
    t0 = time.monotonic()
    root, kernel = build.ensure_dracut_guest()
    python = build.host_python_like(root)
    if python is None:
        pytest.skip("dracut VM test needs a host Python 3.13 with pip, to build its wheels")
    keys = build.ensure_keys()
    disk = build.ensure_disk(keys)
    t1 = time.monotonic()
    out = work / "initrd.img"
    initrd = build.build_dracut_initramfs(root, kernel, keys, out, host_python=python)
    print(
        f"\nvm-dracut: cached parts in {t1 - t0:.1f} s; initramfs by dracut in "
        f"{initrd.seconds:.1f} s, {initrd.path.stat().st_size / 1e6:.1f} MB"
    )
    # TCG on a busy machine: udev may take minutes, longer than systemd's 90 s device wait.
    # The journal on the console: password-agent's and the client's lines explain a failure.
    cmdline = (
        f"rd.luks.name={build.luks_uuid(disk)}={build.MAPPER_NAME} rd.neednet=1 "
        "systemd.default_device_timeout_sec=900 systemd.journald.forward_to_console=1 "
    )
    return Dracut(qemu.BootFiles(kernel.vmlinux, initrd.path, disk), keys,
                  cmdline + qemu.connect_cmdline())  # fmt: skip


def boot_disabled(work: Path, dracut: Dracut) -> str:
    """Job: a guest whose client the server refuses stays at systemd's question. Once it asks
    and is refused it has shown all it can (the client only retries): it is stopped."""
    with (
        our_server(clients_conf(dracut.keys, enabled="False")) as refusing,
        qemu.boot(dracut.files, dracut.cmdline, qemu.user_netdev(refusing.port),
                  work / "console", limit=QEMU_LIMIT) as locked,
    ):  # fmt: skip
        prompt = locked.wait_for(PROMPT, BOOT_TIMEOUT)
        refusing.wait_for_log("is disabled", timeout=BOOT_TIMEOUT)
        assert build.ROOT_MARKER not in locked.text()
        locked.stop()
        assert "Sending secret" not in refusing.log_text()
    return f"the disabled guest asks at {prompt:.1f} s"


def boot_enabled(work: Path, dracut: Dracut) -> str:
    """Job: the enabled client's root opens through password-agent."""
    with (
        our_server(clients_conf(dracut.keys)) as server,
        qemu.boot(dracut.files, dracut.cmdline, qemu.user_netdev(server.port),
                  work / "console", limit=QEMU_LIMIT) as guest,
    ):  # fmt: skip
        marker = guest.wait_for(build.ROOT_MARKER, BOOT_TIMEOUT)
        assert "Sending secret to" in server.log_text()
        assert "Mandos plugin mandos-client" in guest.text()  # password-agent ran our client
        guest.wait_exit(60)
    return f"root marker at {marker:.1f} s"


def test_dracut_unlocks_and_a_disabled_client_stays_locked(vm_jobs: jobs.Scheduler) -> None:
    """Two guests (two jobs, side by side with the other modules' guests): the enabled
    client's root opens through password-agent; the disabled one stays at systemd's question
    while the server refuses it."""
    locked = vm_jobs.result("dracut:disabled")
    unlocked = vm_jobs.result("dracut:enabled")
    print(f"\nvm-dracut: {locked}; {unlocked}")
