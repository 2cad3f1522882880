"""The audit trail file: hash-chained JSON lines, appended with group-committed fsyncs.

Rules of this module:

1. Records are sealed (:mod:`mandos.core.audit_record`) in the event loop, in the order they
   happen, and queued. One flusher task writes every queued line and fsyncs, in a thread, so
   a storm of requests costs one fsync per batch, not one per record (group commit).
2. :meth:`AuditLog.record_durably` returns only after its line (and every line before it) is
   on disk. The server sends a secret only after that; if the write fails it raises
   :class:`AuditError` and the secret is not sent (fail closed).
3. :meth:`AuditLog.reopen` (SIGHUP, after logrotate moved the file) makes later records go to
   a fresh file at the same path; the chain goes on, so the new file's first record names the
   old file's last hash. A file begins with a ``log_opened`` record (or with seq 0), so that
   removing a file's first lines is seen too (``mandos-audit verify`` checks it).
4. At start the chain resumes from the file's last whole line (or, for an empty or missing
   file, from ``PATH.1``, logrotate's newest old file); a torn last line, left by a crash in
   mid-write, is cut off: its fsync never finished, so nothing it recorded happened (no secret
   leaves before its record is durable).
5. The file is created 0600; nothing but names, key IDs, addresses and reasons is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Final

from mandos.core.audit_record import (
    LOG_OPENED,
    AuditChainError,
    ChainHead,
    Value,
    parse_record,
    seal,
)
from mandos.core.errors import MandosError

log = logging.getLogger("mandos")

TAIL_BYTES: Final = 65536
_FLAGS: Final = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


class AuditError(MandosError):
    """The audit trail cannot be read or written."""

    exit_code = 74  # EX_IOERR


def _last_line(path: Path) -> tuple[bytes | None, int]:
    """The last whole line of ``path`` (no newline) and how many torn bytes follow it."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, size - TAIL_BYTES)
            f.seek(start)
            tail = f.read()
    except FileNotFoundError:
        return None, 0
    end = tail.rfind(b"\n")
    torn = len(tail) - (end + 1)
    if end < 0:
        return None, torn
    begin = tail.rfind(b"\n", 0, end) + 1
    if begin == 0 and start > 0:
        raise AuditError(f"{path}: last line longer than {TAIL_BYTES} bytes")
    return tail[begin:end], torn


def resume_head(path: Path) -> tuple[ChainHead, int]:
    """The head to go on from, and the number of torn bytes at the end of ``path``.

    Raises:
        AuditError: the last whole record is damaged (the chain cannot be continued).
    """
    line, torn = _last_line(path)
    if line is None:
        rotated = path.with_name(path.name + ".1")
        line, _ = _last_line(rotated) if rotated != path else (None, 0)
    if line is None:
        return ChainHead(), torn
    try:
        record = parse_record(line)
    except AuditChainError as exc:
        raise AuditError(f"{path}: last record is damaged: {exc}") from None
    seq, digest = record["seq"], record["hash"]
    assert isinstance(seq, int)
    assert isinstance(digest, str)
    return ChainHead(seq + 1, digest), torn


class AuditLog:
    """One append-only audit file, owned by the task running :meth:`run`."""

    def __init__(self, path: Path, now: Callable[[], datetime]) -> None:
        """Resume the chain in ``path`` (cutting a torn last line), or raise AuditError."""
        self.path = path
        self._now = now
        if not path.parent.is_dir():
            raise AuditError(f"audit log {path}: the directory {path.parent} does not exist")
        try:
            self._head, torn = resume_head(path)
            if torn:
                size = path.stat().st_size
                os.truncate(path, size - torn)
                log.warning("Audit log %s: cut %d bytes of a torn last line", path, torn)
        except OSError as exc:
            raise AuditError(f"{path}: {exc.strerror or exc}") from exc
        self._fd: int | None = None
        self._pending: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._kick = asyncio.Event()
        self._reopen_at: int | None = None  # index in _pending where a fresh file starts
        self._broken: str | None = None
        self._lock = threading.Lock()  # a write cancelled in mid-flight still runs
        #: Called with the number of records lost each time a batch cannot be written.
        self.on_failure: Callable[[int], None] = lambda _lost: None
        if not path.exists() or path.stat().st_size == 0:
            self.record(LOG_OPENED, {"reason": "new file"})

    @property
    def head(self) -> ChainHead:
        """The chain's head after every record handed in so far."""
        return self._head

    def record(self, event: str, fields: Mapping[str, Value]) -> None:
        """Queue a record; it reaches the disk with the next batch."""
        line, self._head = seal(self._head, self._now(), event, fields)
        self._pending.append(line)
        self._kick.set()

    async def record_durably(self, event: str, fields: Mapping[str, Value]) -> None:
        """Queue a record and wait until it is on disk.

        Raises:
            AuditError: the file cannot be written; the caller must not act on the record.
        """
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.record(event, fields)
        await waiter

    def reopen(self) -> None:
        """Records from now on go to a fresh file at the same path (after logrotate)."""
        if self._reopen_at is None:
            self._reopen_at = len(self._pending)
        self.record(LOG_OPENED, {"reason": "reopened"})

    async def run(self) -> None:
        """Write batches until cancelled; then write what is left and close."""
        try:
            while True:
                await self._kick.wait()
                self._kick.clear()
                await self._flush()
        finally:
            with contextlib.suppress(Exception):
                self._write(self._take()[0], None)
            self._close()

    def _take(self) -> tuple[list[bytes], list[asyncio.Future[None]]]:
        batch, waiters = self._pending, self._waiters
        self._pending, self._waiters = [], []
        return batch, waiters

    async def _flush(self) -> None:
        batch, waiters = self._take()
        reopen_at, self._reopen_at = self._reopen_at, None
        try:
            await asyncio.to_thread(self._write, batch, reopen_at)
        except OSError as exc:
            reason = f"cannot write the audit log {self.path}: {exc.strerror or exc}"
            if reason != self._broken:  # once per episode, not once per batch
                log.error("%s; no secret is sent until it can be written", reason)
            self._broken = reason
            self.on_failure(len(batch))
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(AuditError(reason))
            return
        if self._broken is not None:
            log.warning("The audit log %s can be written again", self.path)
        self._broken = None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _write(self, batch: list[bytes], reopen_at: int | None) -> None:
        """(In a worker thread.) Append ``batch`` and fsync it; from ``reopen_at`` on, to a
        freshly opened file."""
        with self._lock:
            if reopen_at is None:
                self._append(batch)
            else:
                self._append(batch[:reopen_at])
                self._close_locked()
                self._append(batch[reopen_at:])

    def _append(self, batch: list[bytes]) -> None:
        if self._fd is None:
            created = not self.path.exists()
            self._fd = os.open(self.path, _FLAGS, 0o600)
            if created:
                _fsync_dir(self.path.parent)
        if not batch:
            return
        start = os.lseek(self._fd, 0, os.SEEK_END)
        view = memoryview(b"".join(batch))
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fdatasync(self._fd)  # the data and the new size; not the times
        except OSError:
            # No half batch stays behind (a torn line in mid-file); the next try reopens.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            self._close_locked()
            raise

    def _close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
