"""SLIP-39 on another core: a forked child checks and combines shares for mandos-client.

Several --connect mostly mean a threshold, and importing SLIP-39 (shamir-mnemonic and what it
pulls in) is most of what 2 of 3 costs over one server. In a thread it would hold the GIL
that the main thread needs for its handshakes; a forked child imports it on another core
while the main thread loads the keys and talks to the servers.

Rules of this module:
1. start() forks once, before libgnutls is loaded and before any thread runs. The child puts
   the stop signals back to their defaults and stdin/stdout on /dev/null (stdout carries the
   password), imports SLIP-39, then answers requests until its request pipe closes, and ends
   with os._exit: nothing of the parent's clean-up runs twice.
2. The child only calls adapters/slip39 (verify, recover) on shares it is sent and sends back
   the outcome; it logs nothing, touches no file, socket or key. Frames are a 4-byte length
   and a body; a share travels in its payload encoding (core/shares.encode).
3. Worker has the interface that threshold.Judge uses of adapters/slip39 (verify, recover,
   raising ShareError). If the child cannot be started, dies or answers nonsense, the same
   calls run in-process from then on: a slower boot, never a different answer.
4. close() closes the pipes and reaps the child; main() calls it on every way out.
   client/launch.py, the entry point, is the one that starts it.
5. Shares and the combined value cross a pipe that only this process and its child hold.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Final, NoReturn

    from mandos.core import shares

_LENGTH_SIZE: Final = 4  # big-endian frame length
_VERIFY: Final = b"V"
_RECOVER: Final = b"R"
_OK: Final = b"+"
_REFUSED: Final = b"-"
_SEPARATOR: Final = b"\0"  # between shares: an encoded share has no NUL


def _read_exactly(fd: int, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = os.read(fd, count - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _read_frame(fd: int) -> bytes:
    length = int.from_bytes(_read_exactly(fd, _LENGTH_SIZE), "big")
    return _read_exactly(fd, length)


def _write_frame(fd: int, body: bytes) -> None:
    from mandos.initramfs.process import write_all

    write_all(fd, len(body).to_bytes(_LENGTH_SIZE, "big") + body)


def _encode(share: shares.Share) -> bytes:
    from mandos.core import shares

    return shares.encode(share.set_id, share.index, share.count, share.threshold, share.words)


def _answer(slip39: ModuleType, request: bytes) -> bytes:
    """The child's answer to one request: OK (and the value), or REFUSED and the reason."""
    from mandos.core import shares
    from mandos.core.errors import ShareError

    op, body = request[:1], request[1:]
    try:
        group = [shares.parse(part) for part in body.split(_SEPARATOR)]
        if op == _VERIFY:
            slip39.verify(group[0])
            return _OK
        if op == _RECOVER:
            return _OK + bytes(slip39.recover(group))
    except ShareError as exc:
        return _REFUSED + str(exc).encode()
    raise ValueError("unknown request")


def _serve(requests: int, answers: int) -> NoReturn:
    """The child (rule 1): import SLIP-39, answer until the request pipe closes."""
    status = 1
    try:
        import gc

        gc.disable()  # a short life: no collection writes to the parent's pages
        import signal

        from mandos.initramfs.process import STOP_SIGNALS

        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        from mandos.client.threshold import import_slip39

        slip39 = import_slip39()
        while True:
            try:
                request = _read_frame(requests)
            except EOFError:
                status = 0
                break
            _write_frame(answers, _answer(slip39, request))
    finally:
        os._exit(status)


class Worker:
    """SLIP-39's verify and recover, answered by the forked child (in-process if need be)."""

    def __init__(self) -> None:
        self._pid: int | None = None
        self._requests = self._answers = -1
        self._local: ModuleType | None = None

    def start(self) -> None:
        """Fork the child (rule 1); on failure the calls will simply run in-process."""
        try:
            request_r, request_w = os.pipe()
            answer_r, answer_w = os.pipe()
        except OSError:
            return
        import gc

        gc.freeze()  # Python's gc.freeze advice: no collection copies the pages both hold
        try:
            pid = os.fork()
        except OSError:
            for fd in (request_r, request_w, answer_r, answer_w):
                os.close(fd)
            return
        if pid == 0:
            os.close(request_w)
            os.close(answer_r)
            _serve(request_r, answer_w)
        os.close(request_r)
        os.close(answer_w)
        self._pid, self._requests, self._answers = pid, request_w, answer_r

    def verify(self, share: shares.Share) -> None:
        """Raise ShareError unless ``share`` checks out (adapters/slip39.verify)."""
        if self._ask(_VERIFY + _encode(share)) is None:
            self._in_process().verify(share)

    def recover(self, group: list[shares.Share]) -> bytes:
        """The packed value from K shares of one set (adapters/slip39.recover)."""
        value = self._ask(_RECOVER + _SEPARATOR.join(map(_encode, group)))
        if value is None:
            recovered: bytes = self._in_process().recover(group)
            return recovered
        return value

    def close(self) -> None:
        """Close the pipes and reap the child (rule 4)."""
        if self._pid is None:
            return
        import contextlib

        for fd in (self._requests, self._answers):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self._pid, 0)
        self._pid = None

    def _ask(self, request: bytes) -> bytes | None:
        """The child's value for ``request``, ShareError for its refusal, None if it is gone."""
        if self._pid is None:
            return None
        try:
            _write_frame(self._requests, request)
            answer = _read_frame(self._answers)
        except (OSError, EOFError):
            self.close()
            return None
        if answer[:1] == _REFUSED:
            from mandos.core.errors import ShareError

            raise ShareError(answer[1:].decode(errors="replace"))
        if answer[:1] != _OK:
            self.close()
            return None
        return answer[1:]

    def _in_process(self) -> ModuleType:
        if self._local is None:
            from mandos.client.threshold import import_slip39

            self._local = import_slip39()
        return self._local
