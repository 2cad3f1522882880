"""The real initramfs's Mandos payload within both limits (issue 16): integration/initramfs-size.

The image is the one the VM tests boot (built once per session by the job ``image:bookworm``,
tests/vm/jobs.py). It is compared with the same chroot's image built with our hook skipped,
and Debian's mandos-client 1.8.16 is measured the same way (its own chroot, apt-installed,
against the same baseline). Neither of those two holds our code, so both are built once and
cached (tests/vm/build.py); a session whose cache has them builds nothing more than the VM
tests already do.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.vm import build, jobs
from tests.vm.test_boot import VmSetup

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(1500)]

#: At most this many times the reference's payload (kernel modules not counted).
MAX_RATIO = 1.5
#: And at most this many MB: 1.5 times the 14.3 MB recorded for the reference, so that a
#: reference that grows (a new Debian point release) does not let ours grow with it.
MAX_MB = 21.5


def payload_report(_work: Path, vm_setup: VmSetup) -> str:
    """Job: ``integration/initramfs-size`` on the session's image; its report."""
    kernel = build.ensure_kernel()
    root = build.ensure_chroot(kernel)
    baseline = build.ensure_baseline_initramfs(root, kernel)
    reference = build.reference_payload_bytes(root, kernel, vm_setup.keys) / 1e6
    done = subprocess.run(
        [sys.executable, str(build.INITRAMFS_SIZE), str(vm_setup.files.initrd), str(baseline),
         "--max-mb", str(MAX_MB), "--max-ratio", str(MAX_RATIO),
         "--reference-mb", f"{reference:.3f}"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return f"initramfs payload (reference {reference:.2f} MB):\n{done.stdout}"


def test_payload_within_both_limits(vm_jobs: jobs.Scheduler) -> None:
    print(f"\n{vm_jobs.result('payload')}")
