"""integration/initramfs-size: the payload limits, on real cpio images unpacked by unmkinitramfs.

Two small gzip-compressed newc archives are packed with cpio: one without the hook's files, one
with them (a 3 MB "interpreter", a 1 MB kernel module that is not counted). The script is run
as a program, as CI and an administrator run it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "integration" / "initramfs-size"

pytestmark = pytest.mark.skipif(
    shutil.which("cpio") is None or shutil.which("unmkinitramfs") is None,
    reason="needs cpio and unmkinitramfs (initramfs-tools)",
)


def _pack(tree: Path, image: Path) -> None:
    """A gzip-compressed newc archive, as mkinitramfs makes the main one."""
    names = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    archive = subprocess.run(
        ["cpio", "--quiet", "-o", "-H", "newc"],
        input="\n".join(names).encode() + b"\n", cwd=tree, capture_output=True, check=True,
        timeout=60,
    ).stdout  # fmt: skip
    image.write_bytes(gzip.compress(archive))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("initramfs")
    without, with_ = base / "without", base / "with"
    for tree in (without, with_):
        (tree / "bin").mkdir(parents=True)
        (tree / "bin" / "busybox").write_bytes(os.urandom(200_000))
    (with_ / "usr" / "bin").mkdir(parents=True)
    (with_ / "usr" / "bin" / "python3").write_bytes(os.urandom(3_000_000))
    (with_ / "usr" / "lib" / "modules").mkdir(parents=True)
    (with_ / "usr" / "lib" / "modules" / "virtio_net.ko").write_bytes(os.urandom(1_000_000))
    _pack(without, base / "without.img")
    _pack(with_, base / "with.img")
    return base / "with.img", base / "without.img"


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_within_both_limits(images: tuple[Path, Path]) -> None:
    done = _run(*images, "--max-mb", "3.5", "--max-ratio", "1.5", "--reference-mb", "2.0")
    assert done.returncode == 0, done.stderr
    assert "added:   2 files, 4.0 MB (kernel modules 1.0 MB)" in done.stdout


def test_over_the_absolute_limit(images: tuple[Path, Path]) -> None:
    done = _run(*images, "--max-mb", "2.5")
    assert done.returncode == 1
    assert done.stderr == "initramfs-size: payload 3.0 MB is over --max-mb 2.5\n"


def test_over_the_ratio_to_the_reference(images: tuple[Path, Path]) -> None:
    done = _run(*images, "--max-ratio", "1.5", "--reference-mb", "1.5")
    assert done.returncode == 1
    assert "2.00x the reference's 1.5 MB, over --max-ratio 1.5" in done.stderr
    default = _run(*images, "--max-ratio", "0.1")  # against the recorded 14.3 MB
    assert "the reference's 14.3 MB" in default.stderr


def test_an_option_without_its_number_is_a_usage_error(images: tuple[Path, Path]) -> None:
    done = _run(*images, "--max-mb")
    assert (done.returncode, done.stderr) == (64, "initramfs-size: an option lacks its number\n")
