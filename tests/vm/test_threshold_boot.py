"""A real VM with a threshold secret, 2 of 3 (issue 13): our three servers on the host, each
holding one share; the guest's mandos-client is told all three (--connect x 3 in
plugin-runner.conf) and reaches each through its own restrict=on guestfwd.

With one server stopped the root opens unattended; with two stopped the guest stays at
cryptsetup's prompt while the client keeps asking. Timings are printed, never asserted.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mandos.keygen import main as keygen
from tests.ports import free_port
from tests.server.ourserver import our_server
from tests.vm import build, jobs, qemu
from tests.vm.test_boot import BOOT_TIMEOUT, PROMPT, VmSetup

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(1500)]

GUEST_PORTS = (4701, 4702, 4703)  # on qemu.GUEST_SERVER, one guestfwd each
CMDLINE = f"ip={qemu.GUEST_IP}::10.0.2.2:255.255.255.0:guest:eth0:off net.ifnames=0 mandos=connect"
RUNNER_CONF = (
    "".join(
        f"--options-for=mandos-client:--connect={qemu.GUEST_SERVER}:{port}\n"
        for port in GUEST_PORTS
    )
    + f"--options-for=mandos-client:--retry={build.CLIENT_RETRY},--debug\n"
)


#: Where Debian's initramfs-tools hook puts plugin-runner.conf in the image.
IMAGE_RUNNER_CONF = "conf/conf.d/mandos/plugin-runner.conf"


def make_threshold(base: Path, vm_setup: VmSetup) -> tuple[VmSetup, list[str]]:
    """The session's kernel, keys, disk and initramfs, told three servers; three share sections.

    Only plugin-runner.conf differs from the session's image (made by mkinitramfs with our
    hook), so instead of a second mkinitramfs run the new file goes in a small cpio appended
    to that image, which the kernel unpacks over the first.
    """
    keys = vm_setup.keys
    conf = build.initramfs_member(vm_setup.files.initrd, IMAGE_RUNNER_CONF).decode()
    assert conf.endswith(build.CLIENT_RUNNER_CONF), conf
    conf = conf.removesuffix(build.CLIENT_RUNNER_CONF) + RUNNER_CONF
    initrd = build.with_overlay(
        vm_setup.files.initrd, {IMAGE_RUNNER_CONF: conf.encode()}, base / "initrd.img"
    )
    passfile = base / "passphrase"
    passfile.write_bytes(keys.passphrase)
    argv = ["--dir", str(keys.keydir), "--passfile", str(passfile), "-S", "--name", "client",
            "--threshold", "2", "--shares", "3", "--output-dir", str(base / "shares")]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        assert keygen.main(argv) == 0
    sections = sorted((base / "shares").glob("*.share-*.conf"))
    setup = VmSetup(qemu.BootFiles(vm_setup.files.vmlinux, initrd, vm_setup.files.disk), keys,
                    "mkinitramfs+overlay")  # fmt: skip
    return setup, [p.read_text() + "checker = true\n" for p in sections]


def netdev(host_ports: list[int]) -> list[str]:
    """User networking that reaches only the three guestfwds (to 127.0.0.1:host_ports)."""
    nc = shutil.which("busybox")
    assert nc is not None
    fwds = ",".join(
        f"guestfwd=tcp:{qemu.GUEST_SERVER}:{g}-cmd:{nc} nc 127.0.0.1 {h}"
        for g, h in zip(GUEST_PORTS, host_ports, strict=True)
    )
    return ["-netdev", f"user,id=n0,restrict=on,{fwds}", "-device", "virtio-net-pci,netdev=n0"]


@contextlib.contextmanager
def up(sections: list[str], which: tuple[int, ...]) -> Iterator[tuple[list[int], list[Path]]]:
    """Our servers for the share numbers in ``which``; the others' ports have no listener."""
    with contextlib.ExitStack() as stack:
        ports, logs = [], []
        for i, section in enumerate(sections):
            if i in which:
                server = stack.enter_context(our_server(section))
                ports.append(server.port)
                logs.append(server.logfile)
            else:
                ports.append(free_port())
        yield ports, logs


def two_stopped(work: Path, threshold: tuple[VmSetup, list[str]]) -> str:
    """Job: only one share's server is up; the guest stays at the prompt."""
    setup, sections = threshold
    with (
        up(sections, (1,)) as (ports, logs),
        qemu.boot(setup.files, CMDLINE, netdev(ports), work / "console") as guest,
    ):
        prompt = guest.wait_for(PROMPT, BOOT_TIMEOUT)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while "Sending secret to" not in logs[0].read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "Sending secret to" in logs[0].read_text()  # its share went out...
        time.sleep(3 * float(build.CLIENT_RETRY))  # ...and the client keeps asking the others
        text = guest.text()
        assert "set up successfully" not in text
        assert build.ROOT_MARKER not in text
    return f"vm(threshold 2/3, two stopped): prompt at {prompt:.1f} s, still locked"


def test_two_of_three_with_two_stopped_stays_at_the_prompt(vm_jobs: jobs.Scheduler) -> None:
    print(f"\n{vm_jobs.result('threshold:two-stopped')}")


def one_stopped(work: Path, threshold: tuple[VmSetup, list[str]]) -> str:
    """Job: two shares' servers are up; the root opens unattended."""
    setup, sections = threshold
    with (
        up(sections, (0, 2)) as (ports, logs),
        qemu.boot(setup.files, CMDLINE, netdev(ports), work / "console") as guest,
    ):
        unlocked = guest.wait_for("cryptroot: set up successfully", BOOT_TIMEOUT)
        marker = guest.wait_for(build.ROOT_MARKER, BOOT_TIMEOUT)
        assert all("Sending secret to" in log.read_text() for log in logs)
        guest.wait_exit(60)
    return f"vm(threshold 2/3, one stopped): unlocked at {unlocked:.1f} s, root {marker:.1f} s"


def test_two_of_three_with_one_stopped_boots(vm_jobs: jobs.Scheduler) -> None:
    print(f"\n{vm_jobs.result('threshold:one-stopped')}")
