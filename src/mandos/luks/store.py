"""Where bindings live (LUKS2 tokens, LUKS1 record files) and the all-or-nothing change.

:func:`changing` backs up every header it will touch (``luksHeaderBackup``, into a root-only
directory) and every LUKS1 record file, and puts them all back if anything inside fails: a
failed command leaves each header byte for byte as it was. The backups are wiped afterwards,
since they hold the key slots of passphrases a rotation means to retire; only a backup that
could not be restored is kept, and the error names it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from mandos.core.errors import MandosError
from mandos.luks.cryptsetup import Cryptsetup
from mandos.luks.model import (
    Binding,
    Header,
    LuksError,
    parse_record_file,
    render_record_file,
)

DEFAULT_RECORD_DIR: Final = "/etc/mandos/luks"
DEFAULT_BACKUP_DIR: Final = "/run/mandos-luks"


@dataclass
class Volume:
    """One LUKS volume as mandos-luks sees it: its header and its Mandos bindings."""

    device: str
    header: Header
    bindings: list[Binding] = field(default_factory=list)


class BindingStore:
    """Reads and writes bindings: tokens on LUKS2, ``RECORD_DIR/UUID.json`` on LUKS1."""

    def __init__(self, cryptsetup: Cryptsetup, record_dir: Path) -> None:
        self.cs = cryptsetup
        self.record_dir = record_dir

    def record_path(self, uuid: str) -> Path:
        """The LUKS1 record file of volume UUID."""
        return self.record_dir / f"{uuid}.json"

    def load(self, device: str) -> Volume:
        """The volume and its bindings; LuksError if it is not LUKS or a record is damaged."""
        header = self.cs.header(device)
        if header.version == 2:
            return Volume(device, header, header.mandos_tokens())
        path = self.record_path(header.uuid)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return Volume(device, header, [])
        except (OSError, UnicodeDecodeError) as exc:
            raise LuksError(f"{path}: cannot read: {exc}") from None
        return Volume(device, header, parse_record_file(text, str(path)))

    def add(self, vol: Volume, binding: Binding) -> None:
        """Record a new binding."""
        if vol.header.version == 2:
            self.cs.import_token(vol.device, binding.to_json())
        vol.bindings.append(binding)
        self._save_record(vol)

    def replace(self, vol: Volume, old: Binding, new: Binding) -> None:
        """Overwrite the record of OLD with NEW (same slot, same token)."""
        if vol.header.version == 2:
            assert old.token_id is not None
            self.cs.import_token(vol.device, new.to_json(), token_id=old.token_id)
        vol.bindings = [new if b == old else b for b in vol.bindings]
        self._save_record(vol)

    def remove(self, vol: Volume, binding: Binding) -> None:
        """Forget a binding (its slot is the caller's business)."""
        if vol.header.version == 2 and binding.token_id is not None:
            self.cs.remove_token(vol.device, binding.token_id)
        vol.bindings = [b for b in vol.bindings if b != binding]
        self._save_record(vol)

    def _save_record(self, vol: Volume) -> None:
        if vol.header.version != 1:
            return
        path = self.record_path(vol.header.uuid)
        if not vol.bindings:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        write_private(path, render_record_file(vol.header.uuid, vol.bindings).encode())


def write_private(path: Path, data: bytes) -> None:
    """Write DATA to PATH atomically, mode 0600, making a 0700 directory if needed."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise LuksError(f"{path}: {exc.strerror}") from None


def _wipe(path: Path) -> None:
    """Overwrite a header backup with zeros, then remove it."""
    with contextlib.suppress(OSError):
        size = path.stat().st_size
        with path.open("r+b") as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(0, size, len(chunk)):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    with contextlib.suppress(OSError):
        path.unlink()


@contextlib.contextmanager
def changing(store: BindingStore, volumes: Sequence[Volume], backup_dir: Path) -> Iterator[None]:
    """Back up what VOLUMES' changes touch; restore all of it if the block raises."""
    try:
        backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="mandos-luks-", dir=backup_dir))  # mode 0700
    except OSError as exc:
        raise LuksError(f"{backup_dir}: cannot make a backup directory: {exc.strerror}") from None
    saved: list[tuple[Volume, Path, bytes | None]] = []
    try:
        for n, vol in enumerate(volumes):
            path = tmp / f"{n}.header"
            store.cs.backup_header(vol.device, path)
            record = store.record_path(vol.header.uuid)
            old = record.read_bytes() if vol.header.version == 1 and record.exists() else None
            saved.append((vol, path, old))
        yield
    except BaseException as exc:
        kept = _restore(store, saved)
        if kept:
            raise LuksError(
                f"{exc}; restoring the header failed: its backup is kept in {kept[0]}"
            ) from exc
        raise
    finally:
        for _vol, path, _old in saved:
            if path.exists():
                _wipe(path)
        if not any(p.suffix == ".kept" for p in tmp.iterdir()):
            shutil.rmtree(tmp, ignore_errors=True)


def _restore(store: BindingStore, saved: Sequence[tuple[Volume, Path, bytes | None]]) -> list[Path]:
    """Put every saved header and record back; the backups that could not be restored."""
    kept: list[Path] = []
    for vol, path, old in saved:
        try:
            store.cs.restore_header(vol.device, path)
        except MandosError:
            keep = path.with_name(path.name + ".kept")
            path.rename(keep)
            kept.append(keep)
        record = store.record_path(vol.header.uuid)
        with contextlib.suppress(LuksError, OSError):
            if old is None:
                record.unlink(missing_ok=True)
            else:
                write_private(record, old)
    return kept


def luks_devices() -> list[str]:
    """Every block device blkid knows as LUKS (for ``list`` with no DEVICE)."""
    argv = ["blkid", "--match-token", "TYPE=crypto_LUKS", "--output", "device"]
    try:
        done = subprocess.run(argv, capture_output=True, check=False, timeout=60)  # noqa: S603
    except (OSError, subprocess.SubprocessError) as exc:
        raise LuksError(f"blkid: {exc}") from None
    return done.stdout.decode("utf-8", "replace").split()
