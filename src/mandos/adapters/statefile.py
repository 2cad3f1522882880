"""The server's state file: versioned JSON written atomically, mode 0600.

The write is crash-safe: a temporary file in the same directory, ``fsync``, ``rename`` over the
old file, then ``fsync`` of the directory, so a ``kill -9`` at any moment leaves either the old or
the new file, never a torn one. A file that cannot be parsed is renamed aside
(``clients.json.bad-<UTC time>``) and reported, never silently discarded; so is a file that is
not a regular file (a FIFO would block the start for ever, ``/dev/zero`` would never end), one
larger than ``MAX_STATE_BYTES``, and one the core finds to be of the wrong shape (:func:`reject`).
Temporary files left by a ``kill -9`` during a save are removed at start-up
(:func:`remove_stale_temp_files`).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mandos.core import state_model
from mandos.core.errors import StateFileError
from mandos.core.registry import Registry

log = logging.getLogger(__name__)

STATE_FILE_NAME = "clients.json"
#: A client's record takes about 700 bytes: this allows some 90,000 clients.
MAX_STATE_BYTES = 64 * 1024 * 1024
_TEMP_PREFIX = ".clients-"
_TEMP_SUFFIX = ".tmp"


def state_path(statedir: str | os.PathLike[str]) -> Path:
    """Where the state lives inside ``statedir``."""
    return Path(statedir) / STATE_FILE_NAME


def encode(data: dict[str, Any]) -> bytes:
    """``data`` as the state file holds it (compact, keys sorted)."""
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def save(path: Path, data: dict[str, Any] | bytes) -> None:
    """Write ``data`` as JSON (or JSON already encoded) to ``path`` atomically, owner-only."""
    # Compact: the C encoder (indent= would force the pure-Python one, 10x slower).
    text = data if isinstance(data, bytes) else encode(data)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise StateFileError(f"cannot write state in {path.parent}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise StateFileError(f"cannot write state file {path}: {exc.strerror}") from exc


def remove_stale_temp_files(statedir: str | os.PathLike[str]) -> int:
    """Remove the temporary files of saves that never finished (kill -9); how many went."""
    removed = 0
    for tmp in Path(statedir).glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
        try:
            if tmp.is_symlink() or not tmp.is_file():
                continue
            tmp.unlink()
        except OSError as exc:
            log.warning("Cannot remove stale temporary file %s: %s", tmp, exc.strerror)
        else:
            removed += 1
    return removed


def load(path: Path) -> dict[str, Any] | None:
    """Read the state file; None if there is none.

    Raises:
        StateFileError: the file is unreadable, not a regular file, too large, or not a JSON
            object. A file with bad content has been renamed aside by then; the message says
            where.
    """
    raw = _read_bounded(path)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise reject(path, f"is corrupt (not JSON: {exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise reject(path, "is corrupt (not a JSON object)")
    return data


def _read_bounded(path: Path) -> bytes | None:
    """The file's bytes, or None if missing; refuses (sets aside) what cannot be a state file."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read state file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise reject(path, f"is not a regular file ({_kind(mode)})")
        try:
            raw = f.read(MAX_STATE_BYTES + 1)
        except OSError as exc:
            raise StateFileError(f"cannot read state file {path}: {exc.strerror}") from exc
    if len(raw) > MAX_STATE_BYTES:
        raise reject(path, f"is larger than {MAX_STATE_BYTES} bytes")
    return raw


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
        stat.S_ISDIR: "a directory",
    }
    return next((kind for test, kind in kinds.items() if test(mode)), "not a file")


def reject(path: Path, problem: str) -> StateFileError:
    """Set ``path`` aside and return the error that says so (``problem`` follows the path)."""
    try:
        aside = set_aside(path)
    except OSError as exc:
        return StateFileError(f"state file {path} {problem}; cannot move it aside: {exc.strerror}")
    return StateFileError(f"state file {path} {problem}; moved to {aside}")


def set_aside(path: Path) -> Path:
    """Rename a bad state file out of the way, keeping it for inspection."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.bad-{stamp}.{n}")
    path.replace(aside)
    return aside


class StateEncoder:
    """The state file's bytes, encoding again only the clients changed since the last call.

    A server with 10,000 clients saves after checker results; converting and encoding every
    client each time cost ~0.3 s of CPU per save. The bytes are what :func:`encode` gives for
    ``state_model.dump(registry)``; each client's part is kept encoded (~0.7 KB), not as dicts.
    """

    def __init__(self) -> None:
        self._done: dict[str, tuple[tuple[object, ...], str]] = {}

    def __call__(self, registry: Registry) -> bytes:
        """The registry's persistent state, encoded."""
        done: dict[str, tuple[tuple[object, ...], str]] = {}
        for s in registry.states():
            key = state_model.client_record_key(s)
            before = self._done.get(s.name)
            if before is not None and before[0] == key:
                done[s.name] = before
            else:
                record = {s.name: state_model.client_record(s)}
                done[s.name] = (key, encode(record).decode()[1:-1])
        self._done = done
        clients = ",".join(done[name][1] for name in sorted(done))
        return f'{{"clients":{{{clients}}},"version":{state_model.VERSION}}}'.encode()
