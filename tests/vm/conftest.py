"""The VM modules' images, built side by side at the start of the session.

Each initramfs build (mkinitramfs, dracut, pip) runs mostly one process at a time, in a chroot
of its own under a lock of its own, so the images that the selected VM modules need are built
in threads at once instead of one module after another. They are all finished before the first
VM test runs: no build process outlives the set-up (the leftover-process check stays exact).
"""

from __future__ import annotations

import importlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.vm.test_boot import VmSetup

#: image -> (the modules that boot it, "module:function" that builds it in a work directory)
IMAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "bookworm": (("test_boot", "test_luks_boot", "test_threshold_boot", "test_initramfs_payload"),
                 "tests.vm.test_boot:make_vm_setup"),
    "trixie": (("test_boot_trixie",), "tests.vm.test_boot_trixie:make_trixie"),
    "dracut": (("test_boot_dracut",), "tests.vm.test_boot_dracut:make_dracut"),
}  # fmt: skip


def _builder(target: str) -> Any:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


@pytest.fixture(scope="session")
def vm_images(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, object]:
    """Each image the session's VM tests need: what its builder returned, or what it raised
    (a skip included), for ``vm_image`` to hand out or raise again."""
    selected = {Path(str(item.path)).stem for item in request.session.items}
    jobs = {
        key: (_builder(target), tmp_path_factory.mktemp(f"vm-{key}"))
        for key, (modules, target) in IMAGES.items()
        if selected & set(modules)
    }
    results: dict[str, object] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        futures = {key: pool.submit(make, work) for key, (make, work) in jobs.items()}
        for key, future in futures.items():
            try:
                results[key] = future.result()
            except (Exception, pytest.skip.Exception) as exc:
                results[key] = exc
    return results


def vm_image(images: dict[str, object], key: str) -> object:
    """The built image ``key``; its builder's exception (or skip) raised again."""
    value = images[key]
    if isinstance(value, BaseException):
        raise value
    return value


@pytest.fixture(scope="session")
def vm_setup(vm_images: dict[str, object]) -> VmSetup:
    """The bookworm image with our hook, kernel, keys and disk (tests/vm/test_boot.py)."""
    from tests.vm.test_boot import VmSetup

    image = vm_image(vm_images, "bookworm")
    assert isinstance(image, VmSetup)
    return image
