"""The VM tests' shared fixture: one initramfs of the current tree per session, for every module.

It lives here, not in test_boot.py: a session fixture imported into several test modules is a
separate fixture in each, and each built its own image.
"""

from __future__ import annotations

import time

import pytest

from tests.vm import build, qemu
from tests.vm.test_boot import VmSetup, _missing_tools


@pytest.fixture(scope="session")
def vm_setup(tmp_path_factory: pytest.TempPathFactory) -> VmSetup:
    """Kernel, chroot, keys and disk from the cache; the initramfs built afresh."""
    missing = _missing_tools()
    if missing:
        pytest.skip(f"VM test needs {', '.join(missing)} (scripts/install-deps)")
    t0 = time.monotonic()
    kernel = build.ensure_kernel()
    keys = build.ensure_keys()
    disk = build.ensure_disk(keys)
    root = build.ensure_chroot(kernel)
    t1 = time.monotonic()
    initrd = build.build_initramfs(root, kernel, keys, tmp_path_factory.mktemp("vm") / "initrd.img")
    print(
        f"\nvm: cached parts ready in {t1 - t0:.1f} s; initramfs by {initrd.builder} in "
        f"{initrd.seconds:.1f} s, {initrd.path.stat().st_size / 1e6:.1f} MB"
    )
    return VmSetup(qemu.BootFiles(kernel.vmlinux, initrd.path, disk), keys, initrd.builder)
