"""The server's state file: versioned JSON written atomically, mode 0600.

The write is crash-safe: a temporary file in the same directory, ``fsync``, ``rename`` over the
old file, then ``fsync`` of the directory, so a ``kill -9`` at any moment leaves either the old or
the new file, never a torn one. A file that cannot be parsed is renamed aside
(``clients.json.bad-<UTC time>``) and reported, never silently discarded.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mandos.core.errors import StateFileError

log = logging.getLogger(__name__)

STATE_FILE_NAME = "clients.json"


def state_path(statedir: str | os.PathLike[str]) -> Path:
    """Where the state lives inside ``statedir``."""
    return Path(statedir) / STATE_FILE_NAME


def save(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically, readable only by its owner."""
    # Compact: the C encoder (indent= would force the pure-Python one, 10x slower).
    text = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    try:
        fd, tmp = tempfile.mkstemp(prefix=".clients-", suffix=".tmp", dir=path.parent)
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


def load(path: Path) -> dict[str, Any] | None:
    """Read the state file; None if there is none.

    Raises:
        StateFileError: the file is unreadable or not a JSON object. A file with bad content
            has been renamed aside by then; the message says where.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read state file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        problem = f"not JSON: {exc.__class__.__name__}"
    else:
        if isinstance(data, dict):
            return data
        problem = "not a JSON object"
    aside = set_aside(path)
    raise StateFileError(f"state file {path} is corrupt ({problem}); moved to {aside}")


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
