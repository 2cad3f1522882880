"""Boot benchmark: QEMU start to the root's marker, ours versus Debian's mandos-client 1.8.16.

Usage (as root, from the repository): ``.venv/bin/python -m bench.boot [--runs 5] [--json]``

Both initramfs images are built the same way (Debian's mkinitramfs in the cached bookworm chroot
of tests/vm), one with our hook and package, one with Debian's ``mandos-client`` package
instead, and both fetch the password from our server on 127.0.0.1 through the same
restrict=on guestfwd. Prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.server.ourserver import our_server
from tests.vm import build, qemu

BOOT_TIMEOUT = 240.0


@dataclass
class Figures:
    """One initramfs: its size and the boot times measured with it."""

    name: str
    image_bytes: int
    unpacked_bytes: int
    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")


def unpacked_size(image: Path) -> int:
    """The bytes of every file in ``image`` once unpacked (unmkinitramfs)."""
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as tmp:
        build.run(["unmkinitramfs", image, tmp])
        return sum(p.lstat().st_size for p in Path(tmp).rglob("*") if not p.is_dir())


def boot_times(files: qemu.BootFiles, keys: build.ClientKeys, runs: int, work: Path) -> list[float]:
    """Seconds from QEMU start to the marker, ``runs`` times against one running server."""
    times: list[float] = []
    conf = keys.section + "checker = true\n"
    with our_server(conf) as server:
        for i in range(runs):
            console = work / f"console-{files.initrd.stem}-{i}.log"
            net = qemu.user_netdev(server.port)
            with qemu.boot(files, qemu.connect_cmdline(), net, console) as guest:
                times.append(guest.wait_for(build.ROOT_MARKER, BOOT_TIMEOUT))
                guest.wait_exit(60)
    return times


def main(argv: list[str] | None = None) -> int:
    """Build both images, boot each ``--runs`` times, print the medians and sizes."""
    parser = argparse.ArgumentParser(prog="bench.boot", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--ours-only", action="store_true")
    args = parser.parse_args(argv)
    kernel = build.ensure_kernel()
    keys = build.ensure_keys()
    disk = build.ensure_disk(keys)
    root = build.ensure_chroot(kernel)
    results: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as tmp:
        work = Path(tmp)
        images = [("mandos-py", build.build_initramfs(root, kernel, keys, work / "ours.img"))]
        if not args.ours_only:
            ref_root = build.ensure_reference_chroot(root)
            ref = build.build_reference_initramfs(ref_root, kernel, keys, work / "reference.img")
            images.append(("mandos-client 1.8.16", ref))
        for name, image in images:
            files = qemu.BootFiles(kernel.vmlinux, image.path, disk)
            times = boot_times(files, keys, args.runs, work)
            results.append(
                Figures(name, image.path.stat().st_size, unpacked_size(image.path), times)
            )
    if args.json:
        out = [dict(asdict(r), median=r.median) for r in results]
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return 0
    sys.stdout.write(
        f"{'initramfs':<22} {'median s':>9} {'image MB':>9} {'unpacked MB':>12}  runs\n"
    )
    for r in results:
        runs = " ".join(f"{t:.1f}" for t in r.times)
        sys.stdout.write(
            f"{r.name:<22} {r.median:>9.1f} {r.image_bytes / 1e6:>9.1f} "
            f"{r.unpacked_bytes / 1e6:>12.1f}  {runs}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
