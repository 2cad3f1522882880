"""Boot the test guest under QEMU (TCG, PVH vmlinux) and watch its serial console.

Rules of this module:
1. QEMU always runs under ``timeout`` and in its own session; ``Guest.stop`` ends that session
   by PID (QEMU and the guestfwd helpers it spawned), whatever happened.
2. User-mode networking is ``restrict=on``: the guest reaches only the guestfwd, a ``cmd:``
   helper (``busybox nc``) per connection to our server on the host's 127.0.0.1
   (VM-BOOT.md section 3: the chardev form loses the server's EOF).
3. With a tap device instead, QEMU runs inside a network namespace the test made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

GUEST_SERVER: Final = "10.0.2.100"
GUEST_PORT: Final = 1234
GUEST_IP: Final = "10.0.2.15"
QEMU_TIMEOUT: Final = 480.0


@dataclass(frozen=True)
class BootFiles:
    """What one boot needs: kernel, initramfs and the encrypted disk."""

    vmlinux: Path
    initrd: Path
    disk: Path


def user_netdev(host_port: int) -> list[str]:
    """QEMU user networking that reaches only our server on 127.0.0.1:``host_port``."""
    nc = shutil.which("busybox")
    if nc is None:
        raise RuntimeError("busybox (busybox-static) is needed for the guestfwd helper")
    fwd = f"guestfwd=tcp:{GUEST_SERVER}:{GUEST_PORT}-cmd:{nc} nc 127.0.0.1 {host_port}"
    return ["-netdev", f"user,id=n0,restrict=on,{fwd}", "-device", "virtio-net-pci,netdev=n0"]


def tap_netdev(ifname: str) -> list[str]:
    """QEMU networking through an existing tap device (in the caller's namespace)."""
    return [
        "-netdev", f"tap,id=n0,ifname={ifname},script=no,downscript=no",
        "-device", "virtio-net-pci,netdev=n0",
    ]  # fmt: skip


def connect_cmdline() -> str:
    """Kernel options for a static address and ``mandos=connect`` to the guestfwd."""
    return (
        f"ip={GUEST_IP}::10.0.2.2:255.255.255.0:guest:eth0:off net.ifnames=0 "
        f"mandos=connect:{GUEST_SERVER}:{GUEST_PORT}"
    )


@dataclass
class Guest:
    """A running QEMU whose serial console goes to ``console``."""

    process: subprocess.Popen[bytes]
    console: Path
    started: float
    events: dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        """The console output so far."""
        try:
            return self.console.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, needle: str, timeout: float) -> float:
        """Seconds since QEMU start when ``needle`` appeared; raises on timeout or QEMU exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                at = time.monotonic() - self.started
                self.events.setdefault(needle, at)
                return at
            if self.process.poll() is not None:
                if needle in self.text():
                    continue
                raise AssertionError(
                    f"QEMU exited ({self.process.returncode}) before {needle!r}:\n{self.tail()}"
                )
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} not on the console after {timeout} s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        """The last lines of the console, for failure messages."""
        return "\n".join(self.text().splitlines()[-lines:])

    def wait_exit(self, timeout: float) -> int:
        """Wait for QEMU to exit (the guest powers off after the marker)."""
        return self.process.wait(timeout)

    def stop(self) -> None:
        """End QEMU and its helpers: the whole session, by its PID."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


def qemu_argv(
    files: BootFiles, cmdline: str, net: Sequence[str], console: Path, limit: float = QEMU_TIMEOUT
) -> list[str]:
    """The QEMU command line: TCG, PVH boot of vmlinux, virtio disk with snapshot=on.

    ``-cpu qemu64`` (baseline x86-64, what Debian's kernels and programs are built for), not
    ``max``: TCG then emulates no AVX, AES-NI or larger XSAVE state, and a boot to the root
    costs about 9% less CPU (5 s of 55, measured side by side).
    """
    return [
        "timeout", "-k", "5", str(int(limit)),
        "qemu-system-x86_64", "-accel", "tcg", "-cpu", "qemu64", "-m", "512", "-smp", "1",
        "-M", "pc", "-nodefaults", "-no-reboot", "-display", "none", "-vga", "none",
        "-kernel", str(files.vmlinux), "-initrd", str(files.initrd),
        "-append", f"console=ttyS0 panic=-1 root=/dev/mapper/cryptroot ro {cmdline}",
        "-drive", f"file={files.disk},if=virtio,format=raw,snapshot=on",
        "-serial", f"file:{console}", "-monitor", "none",
        *net,
    ]  # fmt: skip


@contextlib.contextmanager
def boot(
    files: BootFiles,
    cmdline: str,
    net: Sequence[str],
    console: Path,
    *,
    prefix: Sequence[str] = (),
    limit: float = QEMU_TIMEOUT,
) -> Iterator[Guest]:
    """Start QEMU (optionally under ``prefix``, e.g. ``ip netns exec NS``); always stop it.

    ``limit``: seconds after which ``timeout`` ends QEMU whatever happens.
    """
    argv = [*prefix, *qemu_argv(files, cmdline, net, console, limit)]
    log = console.with_suffix(".qemu.log")
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    guest = Guest(process, console, time.monotonic())
    try:
        yield guest
    finally:
        guest.stop()
