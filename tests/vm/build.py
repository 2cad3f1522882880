"""Build what the VM test boots: kernel, chroot, initramfs, keys and encrypted disk (cached).

Rules of this module:
1. Everything slow is cached under ``.cache/vm`` (or ``$MANDOS_VM_CACHE``): the kernel package
   and its extracted PVH ``vmlinux``, the mmdebstrap chroot, the keys and the LUKS2 disk. A stage
   is built in a temporary directory and renamed into place, so an interrupted build is redone.
2. The initramfs is rebuilt once per test session: it holds the current code, installed into
   the chroot with ``integration/install --root`` and packed by Debian's real mkinitramfs.
3. The disk is built on the host without device-mapper: ``mkfs.ext4 -d`` on a file, then
   ``cryptsetup reencrypt --encrypt`` in userspace with cheap PBKDF2 (VM-BOOT.md section 2).
4. Nothing here talks to the network except apt (the kernel package, mmdebstrap) and pip (our
   package's dependencies inside the chroot).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import lzma
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[2]
SUITE: Final = "bookworm"
MIRROR: Final = "http://deb.debian.org/debian"
CHROOT_PACKAGES: Final = (
    "initramfs-tools", "cryptsetup-initramfs", "cryptsetup-bin", "busybox", "kmod", "zstd",
    "python3", "python3-venv", "libgnutls30", "gpg", "gpg-agent", "udev", "klibc-utils",
)  # fmt: skip
#: Kernel modules the guest needs (virtio disk and NIC, dm-crypt, ext4).
GUEST_MODULES: Final = ("virtio_pci", "virtio_blk", "virtio_net", "ext4", "dm_crypt", "xts")
ROOT_MARKER: Final = "MANDOS-VM-ROOT-OK"
MAPPER_NAME: Final = "cryptroot"
PYTHON_PREFIX: Final = "/opt/mandos-py"
#: The client retries every this many seconds (default 10) so scenario 3 is quick.
CLIENT_RETRY: Final = "2"
CLIENT_RUNNER_CONF: Final = f"--options-for=mandos-client:--retry={CLIENT_RETRY},--debug\n"


def cache_dir() -> Path:
    """``$MANDOS_VM_CACHE``, else ``<repo>/.cache/vm`` (gitignored)."""
    base = os.environ.get("MANDOS_VM_CACHE")
    path = Path(base) if base else REPO / ".cache" / "vm"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(argv: Sequence[str | Path], *, timeout: float = 600, **kw: object) -> str:
    """Run a build command; its stdout, or an error carrying its output."""
    proc = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kw,  # type: ignore[call-overload]
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, argv))}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return str(proc.stdout)


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold an exclusive lock in the cache, so concurrent sessions build each stage once."""
    with (cache_dir() / f".{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _fresh(path: Path) -> Path:
    """A clean temporary sibling of ``path`` to build in."""
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    return tmp


# --------------------------------------------------------------------------- kernel


@dataclass(frozen=True)
class Kernel:
    """The guest kernel: its release, the PVH ELF to boot, and the unpacked package tree."""

    release: str
    vmlinux: Path
    tree: Path


def kernel_package() -> str:
    """The versioned package ``linux-image-amd64`` depends on (e.g. linux-image-6.1.0-56-amd64)."""
    out = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"],
        capture_output=True, text=True, timeout=120, check=False,
    ).stdout  # fmt: skip
    if "Depends:" not in out:  # no package lists yet on a fresh machine
        run(["apt-get", "update", "-q"], timeout=600)
        out = run(["apt-cache", "depends", "linux-image-amd64"])
    for line in out.splitlines():
        head, _, word = line.strip().partition(":")
        word = word.strip()
        if head == "Depends" and word.startswith("linux-image-") and word.endswith("-amd64"):
            return word
    raise RuntimeError("no linux-image-*-amd64 package known to apt")


def extract_vmlinux(vmlinuz: bytes) -> bytes:
    """The uncompressed ELF kernel inside a bzImage (Debian's kernels are xz-compressed)."""
    start = vmlinuz.find(b"\xfd7zXZ\x00")
    if start < 0:
        raise RuntimeError("no xz stream in vmlinuz")
    data = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(vmlinuz[start:])
    if not data.startswith(b"\x7fELF"):
        raise RuntimeError("the xz stream in vmlinuz is not an ELF kernel")
    return data


def ensure_kernel() -> Kernel:
    """Download (apt-get download) and unpack (dpkg-deb -x) the kernel; extract vmlinux."""
    with locked("kernel"):
        package = kernel_package()
        release = package.removeprefix("linux-image-")
        final = cache_dir() / "kernel" / release
        if not (final / "vmlinux").exists():
            tmp = _fresh(final)
            tmp.mkdir(parents=True)
            run(["apt-get", "download", package], cwd=tmp)
            (deb,) = tmp.glob("*.deb")
            run(["dpkg-deb", "-x", deb, tmp / "tree"])
            deb.unlink()
            vmlinuz = (tmp / "tree" / "boot" / f"vmlinuz-{release}").read_bytes()
            (tmp / "vmlinux").write_bytes(extract_vmlinux(vmlinuz))
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp.rename(final)
        return Kernel(release, final / "vmlinux", final / "tree")


# --------------------------------------------------------------------------- chroot


def chroot_recipe() -> str:
    """What the cached chroot is made of; a change rebuilds it."""
    return "\n".join([SUITE, MIRROR, *CHROOT_PACKAGES, *GUEST_MODULES, "v2"])


def _configure_chroot(root: Path, kernel: Kernel) -> None:
    """Kernel modules, crypttab and initramfs-tools settings for the guest."""
    modules = root / "lib" / "modules"
    modules.mkdir(parents=True, exist_ok=True)
    shutil.copytree(kernel.tree / "lib" / "modules" / kernel.release, modules / kernel.release)
    run(["chroot", root, "depmod", kernel.release])
    _configure_guest(root)


def _configure_guest(root: Path) -> None:
    """crypttab, fstab and initramfs-tools settings for the guest."""
    (root / "etc" / "crypttab").write_text(f"{MAPPER_NAME} /dev/vda none luks,initramfs\n")
    (root / "etc" / "initramfs-tools" / "modules").write_text("\n".join(GUEST_MODULES) + "\n")
    conf = root / "etc" / "initramfs-tools" / "initramfs.conf"
    text = conf.read_text()
    text = text.replace("MODULES=most", "MODULES=list")
    conf.write_text(text + "\nCOMPRESS=zstd\n")
    (root / "etc" / "cryptsetup-initramfs" / "conf-hook").write_text("CRYPTSETUP=y\n")
    (root / "etc" / "fstab").write_text(f"/dev/mapper/{MAPPER_NAME} / ext4 ro 0 1\n")


def ensure_chroot(kernel: Kernel) -> Path:
    """A bookworm chroot made by mmdebstrap with initramfs-tools and cryptsetup-initramfs."""
    with locked("chroot"):
        digest = hashlib.sha256(chroot_recipe().encode()).hexdigest()[:12]
        final = cache_dir() / f"chroot-{digest}"
        if not (final / ".complete").exists():
            tmp = _fresh(final)
            run(
                ["mmdebstrap", "--variant=minbase", f"--include={','.join(CHROOT_PACKAGES)}",
                 SUITE, tmp, MIRROR],
                timeout=1200,
            )  # fmt: skip
            _configure_chroot(tmp, kernel)
            (tmp / ".complete").write_text(chroot_recipe())
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        return final


# --------------------------------------------------------------------------- keys and disk


@dataclass(frozen=True)
class ClientKeys:
    """A client's key directory (as /etc/keys/mandos), its LUKS passphrase and its section."""

    keydir: Path
    passphrase: bytes
    section: str


def ensure_keys() -> ClientKeys:
    """Client keys from our mandos-keygen (RSA-2048 OpenPGP, Ed25519 TLS) and a passphrase."""
    with locked("keys"):
        final = cache_dir() / "keys"
        if not (final / "section.conf").exists():
            tmp = _fresh(final)
            tmp.mkdir()
            keygen = REPO / ".venv" / "bin" / "mandos-keygen"
            run([keygen, "-d", tmp, "-t", "RSA", "-l", "2048", "-s", "RSA", "-L", "2048",
                 "-n", "vmtest"])  # fmt: skip
            (tmp / "passphrase").write_bytes(secrets.token_hex(16).encode())
            section = run([keygen, "-d", tmp, "-F", tmp / "passphrase", "-S"])
            (tmp / "section.conf").write_text(section)
            tmp.rename(final)
        return ClientKeys(
            final, (final / "passphrase").read_bytes(), (final / "section.conf").read_text()
        )


def _root_tree(dest: Path) -> None:
    """A tiny root file system: static busybox and an init that prints the marker."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise RuntimeError("busybox (busybox-static) is not installed on the host")
    for d in ("bin", "sbin", "dev", "proc", "sys", "run", "tmp", "etc"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    # systemd's switch-root (dracut's initramfs) refuses a root without an os-release file.
    (dest / "etc" / "os-release").write_text('ID=mandos-vm\nNAME="Mandos VM test root"\n')
    init = dest / "sbin" / "init"
    init.write_text(
        "#!/bin/busybox sh\n"
        "/bin/busybox mount -t proc proc /proc 2>/dev/null\n"
        f'echo "{ROOT_MARKER} uptime=$(/bin/busybox cut -d" " -f1 /proc/uptime)"\n'
        "/bin/busybox sync\n"
        "/bin/busybox poweroff -f\n"
    )
    init.chmod(0o755)


def ensure_disk(keys: ClientKeys) -> Path:
    """A 64 MiB image: LUKS2 (PBKDF2, 1000 iterations) around an ext4 root with the marker init."""
    with locked("disk"):
        recipe = keys.passphrase + ROOT_MARKER.encode() + b"os-release"
        tag = hashlib.sha256(recipe).hexdigest()[:12]
        final = cache_dir() / f"disk-{tag}.img"
        if not final.exists():
            work = _fresh(cache_dir() / "disk-build")
            work.mkdir()
            try:
                _root_tree(work / "root")
                image = work / "disk.img"
                run(["truncate", "-s", "64M", image])
                run(["mkfs.ext4", "-q", "-F", "-d", work / "root", image, "56M"])
                pw = work / "passphrase"
                pw.write_bytes(keys.passphrase)
                run(["cryptsetup", "reencrypt", "--batch-mode", "--encrypt", "--type", "luks2",
                     "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
                     "--reduce-device-size", "16M", "--key-file", pw, image])  # fmt: skip
                image.rename(final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return final


# --------------------------------------------------------------------------- initramfs


@contextlib.contextmanager
def proc_mounted(root: Path) -> Iterator[None]:
    """/proc mounted in the chroot for the duration (mkinitramfs reads it)."""
    target = root / "proc"
    subprocess.run(["mount", "-t", "proc", "proc", str(target)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@contextlib.contextmanager
def chroot_overlay(lower: Path, work: Path, lock: str) -> Iterator[Path]:
    """LOWER, writable through overlayfs at WORK/merged (changes land in WORK/upper).

    Cheaper than copying a 700 MB chroot; LOWER's LOCK is held meanwhile, so that no build
    changes the cached chroot under the overlay.
    """
    with locked(lock):
        upper, scratch, merged = work / "upper", work / "work", work / "merged"
        for d in (upper, scratch, merged):
            d.mkdir(parents=True)
        options = f"lowerdir={lower},upperdir={upper},workdir={scratch}"
        run(["mount", "-t", "overlay", "overlay", "-o", options, merged])
        try:
            yield merged
        finally:
            subprocess.run(["umount", "-l", str(merged)], check=False, timeout=60)
            shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True)
class Initramfs:
    """A built initramfs and how it was made."""

    path: Path
    builder: str  # "mkinitramfs" (Debian's initramfs-tools) or "fallback"
    seconds: float


def install_keys(root: Path, keys: ClientKeys, runner_conf: str) -> None:
    """Put the client keys and plugin-runner.conf where the hook looks for them."""
    keydir = root / "etc" / "keys" / "mandos"
    keydir.mkdir(parents=True, exist_ok=True)
    keydir.chmod(0o700)
    for name in ("pubkey.txt", "seckey.txt", "tls-pubkey.pem", "tls-privkey.pem"):
        shutil.copy2(keys.keydir / name, keydir / name)
    (root / "etc" / "mandos").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "mandos" / "plugin-runner.conf").write_text(runner_conf)


def build_initramfs(
    root: Path,
    kernel: Kernel,
    keys: ClientKeys,
    out: Path,
    *,
    lock: str = "chroot",
    host_python: str | None = None,
    runner_conf: str = CLIENT_RUNNER_CONF,
) -> Initramfs:
    """Install our package and hook into the chroot, then run Debian's mkinitramfs.

    ``host_python``: a host Python of the chroot's version, to build the wheels with.
    ``runner_conf``: the image's plugin-runner.conf.
    """
    start = time.monotonic()
    env = dict(os.environ, **({"MANDOS_HOST_PYTHON": host_python} if host_python else {}))
    with locked(lock):
        run(["bash", REPO / "integration" / "install", "--root", root, "--client-only"],
            timeout=900, env=env)  # fmt: skip
        # --debug: the client's progress lines on the console explain a failed boot.
        install_keys(root, keys, runner_conf)
        (root / "boot").mkdir(exist_ok=True)
        for name in (f"config-{kernel.release}", f"System.map-{kernel.release}"):
            shutil.copy2(kernel.tree / "boot" / name, root / "boot" / name)
        inside = Path("/tmp") / out.name
        with proc_mounted(root):
            run(["chroot", root, "mkinitramfs", "-o", inside, kernel.release], timeout=900)
        shutil.move(root / str(inside).lstrip("/"), out)
    return Initramfs(out, "mkinitramfs", time.monotonic() - start)


def _newc_member(name: str, mode: int, data: bytes) -> bytes:
    """One member of a "newc" cpio archive (root-owned), padded to 4 bytes."""
    fields = (0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0)
    head = b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
    head += b"\0" * (-len(head) % 4)
    return head + data + b"\0" * (-len(data) % 4)


def initramfs_member(image: Path, name: str) -> bytes:
    """The content of NAME in a zstd-compressed newc initramfs (mkinitramfs' with COMPRESS=zstd)."""
    raw = image.read_bytes()
    start = raw.find(b"\x28\xb5\x2f\xfd")
    data = subprocess.run(
        ["zstd", "-dc"], input=raw[start:], capture_output=True, timeout=120, check=True
    ).stdout
    pos = 0
    while data.startswith(b"070701", pos):
        size, namesize = int(data[pos + 54 : pos + 62], 16), int(data[pos + 94 : pos + 102], 16)
        member = data[pos + 110 : pos + 110 + namesize - 1].decode()
        body = pos + 110 + namesize + (-(110 + namesize) % 4)
        if member == name:
            return data[body : body + size]
        pos = body + size + (-size % 4)
    raise RuntimeError(f"{name} is not in {image}")


def with_overlay(base: Path, files: dict[str, bytes], out: Path) -> Path:
    """BASE with an uncompressed cpio appended whose FILES (mode 0600) replace BASE's.

    The kernel unpacks concatenated archives in order, a later member overwriting an earlier
    one; an archive must start 4-byte aligned, and zero bytes between archives are skipped.
    """
    raw = base.read_bytes()
    members = b"".join(_newc_member(n, 0o100600, d) for n, d in files.items())
    out.write_bytes(raw + b"\0" * (-len(raw) % 4) + members + _newc_member("TRAILER!!!", 0, b""))
    return out


# --------------------------------------------------------------------------- reference client

REFERENCE_VERSION: Final = "1.8.16-1"
_OURS_IN_CHROOT: Final = (
    "usr/lib/mandos", "opt/mandos-py", "usr/share/initramfs-tools/hooks/mandos",
    "usr/share/initramfs-tools/scripts/init-premount/mandos",
    "usr/share/initramfs-tools/scripts/local-premount/mandos",
    "usr/share/initramfs-tools/conf-hooks.d/zz-mandos", "etc/initramfs-tools/conf.d/mandos-conf",
    "usr/lib/dracut/modules.d/90mandos", "etc/mandos", "etc/keys/mandos",
)  # fmt: skip


def ensure_reference_chroot(ours: Path) -> Path:
    """A copy of the chroot without our files, with Debian's mandos-client installed (apt)."""
    with locked("chroot-reference"):
        final = ours.with_name(ours.name + "-reference")
        if not (final / ".complete-reference").exists():
            tmp = _fresh(final)
            run(["cp", "-a", ours, tmp], timeout=900)
            for rel in _OURS_IN_CHROOT:
                target = tmp / rel
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
            (tmp / ".complete").unlink(missing_ok=True)
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            run(["chroot", tmp, "apt-get", "update", "-q"], env=env, timeout=900)
            with proc_mounted(tmp):
                run(["chroot", tmp, "apt-get", "install", "-y", "-q", "--no-install-recommends",
                     "-o", "Dpkg::Options::=--force-confold",
                     f"mandos-client={REFERENCE_VERSION}"], env=env, timeout=1800)  # fmt: skip
            (tmp / ".complete-reference").write_text(REFERENCE_VERSION)
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        return final


def build_reference_initramfs(root: Path, kernel: Kernel, keys: ClientKeys, out: Path) -> Initramfs:
    """The same initramfs, with Debian's mandos-client 1.8.16 and its hook instead of ours."""
    start = time.monotonic()
    with locked("chroot-reference"):
        install_keys(root, keys, f"--options-for=mandos-client:--retry={CLIENT_RETRY}\n")
        (root / "boot").mkdir(exist_ok=True)
        for name in (f"config-{kernel.release}", f"System.map-{kernel.release}"):
            shutil.copy2(kernel.tree / "boot" / name, root / "boot" / name)
        inside = Path("/tmp") / out.name
        with proc_mounted(root):
            run(["chroot", root, "mkinitramfs", "-o", inside, kernel.release], timeout=900)
        shutil.move(root / str(inside).lstrip("/"), out)
    return Initramfs(out, "mkinitramfs+reference", time.monotonic() - start)


# --------------------------------------------------------------------------- payload sizes

INITRAMFS_SIZE: Final = REPO / "integration" / "initramfs-size"


def ensure_baseline_initramfs(root: Path, kernel: Kernel) -> Path:
    """The chroot's image with our hook skipped (MANDOS_PYTHON=/nonexistent), cached.

    What a hook adds is measured against it. It holds none of our code, so it is built once per
    chroot, kernel and initramfs-tools configuration of ours (conf.d, conf-hooks.d), not per run.
    """
    conf = b"".join(
        (REPO / "integration" / "initramfs-tools" / d / n).read_bytes()
        for d, n in (("conf-hooks.d", "zz-mandos"), ("conf.d", "mandos-conf"))
    )
    tag = hashlib.sha256(f"{root.name}\0{kernel.release}\0".encode() + conf).hexdigest()[:12]
    final = cache_dir() / f"initrd-baseline-{tag}.img"
    with locked("chroot"):
        if not final.exists():
            inside = Path("/tmp") / final.name
            env = dict(os.environ, MANDOS_PYTHON="/nonexistent")  # our hook skips itself
            with proc_mounted(root):
                run(["chroot", root, "mkinitramfs", "-o", inside, kernel.release],
                    timeout=900, env=env)  # fmt: skip
            tmp = _fresh(final)
            shutil.move(root / str(inside).lstrip("/"), tmp)
            tmp.rename(final)
    return final


def payload_report(image: Path, baseline: Path) -> dict[str, object]:
    """``integration/initramfs-size --json`` of IMAGE against BASELINE."""
    report: dict[str, object] = json.loads(
        run([sys.executable, INITRAMFS_SIZE, "--json", "--top", "1000", image, baseline])
    )
    return report


def reference_payload_bytes(root: Path, kernel: Kernel, keys: ClientKeys) -> int:
    """What Debian's mandos-client 1.8.16 hook adds (kernel modules not counted), cached.

    Measured as ours is: its image (the reference chroot, apt-installed) against the same
    baseline. Neither depends on our code, so it is measured once per chroot and kernel.
    """
    baseline = ensure_baseline_initramfs(root, kernel)
    record = cache_dir() / f"reference-payload-{baseline.stem.rsplit('-', 1)[1]}.json"
    with locked("reference-payload"):
        if not record.exists():
            _measure_reference(root, kernel, keys, baseline, record)
    return int(json.loads(record.read_text())["payload_bytes"])


def _measure_reference(
    root: Path, kernel: Kernel, keys: ClientKeys, baseline: Path, record: Path
) -> None:
    ref_root = ensure_reference_chroot(root)
    with tempfile.TemporaryDirectory(prefix="mandos-ref-") as work:
        ref = build_reference_initramfs(ref_root, kernel, keys, Path(work) / "reference.img")
        report = payload_report(ref.path, baseline)
    payload = int(str(report["added_bytes"])) - int(str(report["added_module_bytes"]))
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": REFERENCE_VERSION, "payload_bytes": payload}))
    tmp.rename(record)


# --------------------------------------------------------------------------- Debian 13 (trixie)

TRIXIE: Final = "trixie"
#: Debian 13's Mandos, run inside its own chroot (its Python and libraries are trixie's).
TRIXIE_MANDOS: Final = ("mandos", "mandos-client")
TRIXIE_MANDOS_EXTRA: Final = ("procps", "dbus-daemon", "fping")


def trixie_mandos_recipe() -> str:
    """What the cached trixie Mandos chroot is made of; a change rebuilds it."""
    return "\n".join([TRIXIE, MIRROR, *TRIXIE_MANDOS, *TRIXIE_MANDOS_EXTRA, "v1"])


def ensure_trixie_mandos_chroot() -> Path:
    """A trixie chroot (mmdebstrap) with Debian 13's mandos and mandos-client installed.

    Only the chroot sees trixie's archive: the host's apt sources are never touched.
    """
    with locked("chroot-trixie-mandos"):
        digest = hashlib.sha256(trixie_mandos_recipe().encode()).hexdigest()[:12]
        final = cache_dir() / f"chroot-trixie-mandos-{digest}"
        if not (final / ".complete").exists():
            tmp = _fresh(final)
            packages = ",".join((*TRIXIE_MANDOS, *TRIXIE_MANDOS_EXTRA))
            run(["mmdebstrap", "--variant=minbase", f"--include={packages}", TRIXIE, tmp, MIRROR],
                timeout=1800)  # fmt: skip
            (tmp / ".complete").write_text(trixie_mandos_recipe())
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        return final


#: Debian 13 as the guest: its kernel (installed by apt in the chroot), initramfs-tools,
#: cryptsetup and Python 3.13, with our client installed from wheels built for 3.13.
TRIXIE_CHROOT_PACKAGES: Final = (
    "initramfs-tools", "cryptsetup-initramfs", "cryptsetup-bin", "busybox", "kmod", "zstd",
    "python3", "python3-venv", "libgnutls30t64", "gpg", "gpg-agent", "udev", "klibc-utils",
    "linux-image-amd64",
)  # fmt: skip


def extract_vmlinux_zstd(vmlinuz: bytes) -> bytes:
    """The ELF kernel inside a zstd-compressed bzImage (Debian 13's kernels), with zstd(1)."""
    start = vmlinuz.find(b"\x28\xb5\x2f\xfd")
    if start < 0:
        raise RuntimeError("no zstd frame in vmlinuz")
    # The bzImage's size footer follows the frame: zstd then complains, after the whole frame.
    done = subprocess.run(
        ["zstd", "-dc"], input=vmlinuz[start:], capture_output=True, timeout=120, check=False
    )
    if not done.stdout.startswith(b"\x7fELF"):
        raise RuntimeError(f"the zstd frame in vmlinuz is not an ELF kernel: {done.stderr!r}")
    return done.stdout


def trixie_chroot_recipe() -> str:
    """What the cached trixie guest chroot is made of; a change rebuilds it."""
    return "\n".join([TRIXIE, MIRROR, *TRIXIE_CHROOT_PACKAGES, *GUEST_MODULES, "v1"])


def ensure_trixie_guest() -> tuple[Path, Kernel]:
    """A trixie chroot with its kernel installed, and that kernel (vmlinux extracted, cached)."""
    with locked("chroot-trixie"):
        digest = hashlib.sha256(trixie_chroot_recipe().encode()).hexdigest()[:12]
        final = cache_dir() / f"chroot-trixie-{digest}"
        if not (final / ".complete").exists():
            tmp = _fresh(final)
            # No initramfs for the kernel package here: ours is built later, with our hook.
            run(["mmdebstrap", "--variant=minbase", f"--include={','.join(TRIXIE_CHROOT_PACKAGES)}",
                 "--dpkgopt=force-confdef", "--dpkgopt=force-confold",
                 "--essential-hook=mkdir -p \"$1/etc/initramfs-tools\"; "
                 "echo 'update_initramfs=no' > \"$1/etc/initramfs-tools/update-initramfs.conf\"",
                 TRIXIE, tmp, MIRROR], timeout=1800)  # fmt: skip
            for unused in (tmp / "boot").glob("initrd.img-*"):  # the package's, made with -c
                unused.unlink()
            _configure_guest(tmp)
            (tmp / ".complete").write_text(trixie_chroot_recipe())
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        return final, _kernel_from_chroot(final)


def _kernel_from_chroot(root: Path) -> Kernel:
    """The kernel apt installed in ``root``: vmlinux unpacked and boot files copied (cached)."""
    (release,) = [p.name for p in (root / "lib" / "modules").iterdir()]
    kdir = cache_dir() / "kernel-trixie" / release
    with locked("kernel-trixie"):
        if not (kdir / "vmlinux").exists():
            tmp = _fresh(kdir)
            (tmp / "boot").mkdir(parents=True)
            for name in (f"config-{release}", f"System.map-{release}"):
                shutil.copy2(root / "boot" / name, tmp / "boot" / name)
            vmlinuz = (root / "boot" / f"vmlinuz-{release}").read_bytes()
            (tmp / "vmlinux").write_bytes(extract_vmlinux_zstd(vmlinuz))
            kdir.parent.mkdir(parents=True, exist_ok=True)
            tmp.rename(kdir)
    return Kernel(release, kdir / "vmlinux", kdir)


def host_python_like(root: Path) -> str | None:
    """A host Python with pip of the same X.Y as the chroot's python3 (for its wheels), or None.

    Looks on PATH (``pythonX.Y``), then in pyenv's versions (whose PATH shims only answer for
    the selected version).
    """
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    version = run(["chroot", root, "python3", "-c", code]).strip()
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted(pyenv.glob(f"versions/{version}*/bin/python{version}"))
    for candidate in filter(None, [shutil.which(f"python{version}"), *map(str, found)]):
        check = subprocess.run(
            [candidate, "-c", f"import pip; {code}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if check.returncode == 0 and check.stdout.strip() == version:
            return candidate
    return None


#: dracut as the initramfs builder, with systemd in the initramfs (Debian 13's dracut).
DRACUT_CHROOT_PACKAGES: Final = (
    "dracut", "dracut-network", "systemd", "systemd-cryptsetup", "cryptsetup-bin", "udev",
    "kmod", "zstd", "python3", "python3-venv", "libgnutls30t64", "gpg", "gpg-agent",
    "linux-image-amd64", "iproute2",
)  # fmt: skip


def dracut_chroot_recipe() -> str:
    """What the cached dracut guest chroot is made of; a change rebuilds it."""
    return "\n".join([TRIXIE, MIRROR, *DRACUT_CHROOT_PACKAGES, *GUEST_MODULES, "v1"])


def ensure_dracut_guest() -> tuple[Path, Kernel]:
    """A trixie chroot with dracut instead of initramfs-tools, and its kernel (cached)."""
    with locked("chroot-dracut"):
        digest = hashlib.sha256(dracut_chroot_recipe().encode()).hexdigest()[:12]
        final = cache_dir() / f"chroot-dracut-{digest}"
        if not (final / ".complete").exists():
            tmp = _fresh(final)
            run(["mmdebstrap", "--variant=minbase", f"--include={','.join(DRACUT_CHROOT_PACKAGES)}",
                 "--dpkgopt=force-confdef", "--dpkgopt=force-confold",
                 TRIXIE, tmp, MIRROR], timeout=1800)  # fmt: skip
            for unused in (tmp / "boot").glob("initrd.img-*"):
                unused.unlink()
            (tmp / "etc" / "fstab").write_text(f"/dev/mapper/{MAPPER_NAME} / ext4 ro 0 1\n")
            (tmp / ".complete").write_text(dracut_chroot_recipe())
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        return final, _kernel_from_chroot(final)


#: dracut settings for the guest: host-only (the module holds this host's keys), no host
#: command line, systemd and its cryptsetup, network from ip= (network-legacy).
DRACUT_CONF: Final = (
    'hostonly="yes"\nhostonly_cmdline="no"\ncompress="zstd"\n'
    'add_dracutmodules+=" systemd crypt systemd-cryptsetup systemd-networkd "\n'
    f'add_drivers+=" {" ".join(GUEST_MODULES)} "\n'
)
#: What the client gets in the guest: the guestfwd server, quick retries, progress on the console.
DRACUT_CLIENT_DROPIN: Final = (
    '[Service]\nEnvironment="MANDOS_CLIENT_OPTIONS=--connect=10.0.2.100:1234 '
    f'--retry={CLIENT_RETRY} --debug"\n'
)


def build_dracut_initramfs(
    root: Path, kernel: Kernel, keys: ClientKeys, out: Path, *, host_python: str
) -> Initramfs:
    """Install our package and dracut module into the chroot, then run Debian's dracut."""
    start = time.monotonic()
    env = dict(os.environ, MANDOS_HOST_PYTHON=host_python)
    with locked("chroot-dracut"):
        run(["bash", REPO / "integration" / "install", "--root", root, "--client-only"],
            timeout=900, env=env)  # fmt: skip
        install_keys(root, keys, "")
        dropins = root / "etc" / "systemd" / "system" / "ask-password-mandos.service.d"
        dropins.mkdir(parents=True, exist_ok=True)
        (dropins / "vm.conf").write_text(DRACUT_CLIENT_DROPIN)
        (root / "etc" / "dracut.conf.d" / "90-mandos-vm.conf").write_text(DRACUT_CONF)
        inside = Path("/tmp") / out.name
        # Host-only needs /sys, /dev and /run: bound in a private mount namespace.
        enter = (
            'set -e; r="$0"; for d in proc sys dev; do mount --bind "/$d" "$r/$d"; done; '
            'mount -t tmpfs tmpfs "$r/run"; exec chroot "$r" "$@"'
        )
        run(["unshare", "--mount", "--propagation", "private", "sh", "-c", enter, root,
             "dracut", "--force", "--kver", kernel.release, inside], timeout=900)  # fmt: skip
        shutil.move(root / str(inside).lstrip("/"), out)
    return Initramfs(out, "dracut", time.monotonic() - start)


def luks_uuid(disk: Path) -> str:
    """The LUKS header's UUID (for rd.luks.name=)."""
    return run(["cryptsetup", "luksUUID", disk]).strip()
