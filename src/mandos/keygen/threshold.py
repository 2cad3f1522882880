"""mandos-keygen --threshold K --shares N --output-dir DIR: one section file per server.

The passphrase is split with core/shares.py into N shares, any K of which rebuild it; each share
is encrypted to the client's OpenPGP key like a normal secret and written, as a clients.conf
section, to ``DIR/NAME.share-I.conf`` (mode 0600) with a comment "share I of N, threshold K".
A server (ours or Debian's) stores and serves a share unchanged; only our client combines them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mandos.adapters import slip39
from mandos.core import shares
from mandos.core.errors import KeyGenError, ShareError, UsageError
from mandos.keygen import tools


@dataclass(frozen=True, slots=True)
class ThresholdPlan:
    """Where and how to split: validated options."""

    threshold: int
    count: int
    output_dir: Path


def plan(threshold: int | None, count: int | None, output_dir: str | None) -> ThresholdPlan | None:
    """None when no option was given; UsageError unless all three are given and sensible."""
    if threshold is None and count is None and output_dir is None:
        return None
    if threshold is None or count is None or output_dir is None:
        raise UsageError("--threshold, --shares and --output-dir go together")
    try:
        shares.check_parameters(threshold, count)
    except ShareError as exc:
        raise UsageError(f"--threshold/--shares: {exc}") from None
    return ThresholdPlan(threshold, count, Path(output_dir))


def share_path(directory: Path, name: str, index: int) -> Path:
    """DIR/NAME.share-I.conf."""
    return directory / f"{name}.share-{index}.conf"


def taken(p: ThresholdPlan, name: str) -> list[Path]:
    """The share files of this plan that are already there (a symbolic link counts)."""
    paths = (share_path(p.output_dir, name, i) for i in range(1, p.count + 1))
    return [x for x in paths if x.exists() or x.is_symlink()]


def write_shares(
    p: ThresholdPlan,
    name: str,
    passphrase: bytes,
    section_for: Callable[[bytes], str],
    *,
    force: bool,
) -> list[Path]:
    """Split, encrypt and write every share file; the paths written.

    Refuses (before writing anything) to overwrite a share file unless ``force``; with it, old
    files are kept as backups.
    """
    try:
        set_id = secrets.token_bytes(shares.SET_ID_BYTES)
        payloads = slip39.make_shares(passphrase, p.threshold, p.count, set_id)
    except ShareError as exc:
        raise KeyGenError(str(exc)) from None
    try:
        p.output_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyGenError(f"{p.output_dir}: {exc.strerror}") from None
    paths = [share_path(p.output_dir, name, i) for i in range(1, p.count + 1)]
    if not force and (old := taken(p, name)):
        raise KeyGenError(f"refusing to overwrite {old[0]}; use --force")
    for index, (path, payload) in enumerate(zip(paths, payloads, strict=True), 1):
        comment = f"# share {index} of {p.count}, threshold {p.threshold}\n"
        text = comment + section_for(payload)
        tools.write_private(path, text.encode(), backup=force)
    return paths
