"""What mandos-client makes of a decrypted payload: a plain secret, or one share of K.

Rules of this module:
1. A payload that is not a share (core/shares.py ``is_share``) is the password, as today.
2. Shares are kept (core/shares.Collector) until K distinct shares of one set are in hand; then
   the combined secret is the password. Shares of different sets never combine: a share whose
   set differs from one already held gets a warning naming both sets (an older rotation?).
3. A server whose share is kept (or is a duplicate) has nothing more to give: it is not asked
   again. A malformed or corrupt share, and a payload that does not decrypt, are retried.
4. Log lines name servers, sets and share numbers; never share words or secret bytes.
5. Judging is two steps, so that a caller may fetch the next share before SLIP-39 is loaded:
   open() decrypts and reads the share's header; collect() checks its checksum and keeps it,
   with adapters/slip39 or what stands in for it (client/share_worker.py, on another core).
"""

from __future__ import annotations

from mandos.adapters import lazylog
from mandos.client.imports import without
from mandos.core import shares
from mandos.core.errors import ShareError
from mandos.core.frozen import Frozen
from mandos.core.values import Secret

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import ClassVar, Protocol

    class Slip39(Protocol):
        """adapters/slip39's two calls that judging needs (client/share_worker.Worker too)."""

        def verify(self, share: shares.Share) -> None: ...

        def recover(self, group: list[shares.Share]) -> bytes: ...


log = lazylog.get("mandos.client")


class Next(Frozen):  # not an enum: enum (with functools, collections) is ~0.9 MiB of RSS
    """What to do with a server after its payload: one of the two constants below."""

    __slots__ = ("name",)
    name: str
    RETRY: ClassVar[Next]  # ask it again after --retry seconds
    FINISHED: ClassVar[Next]  # its share is in hand; never ask it again

    def __init__(self, name: str) -> None:
        self._init(name=name)


Next.RETRY = Next("retry")
Next.FINISHED = Next("finished")


class Done(Frozen):  # not a dataclass: dataclasses costs ~1.2 MiB of RSS
    """The password is known."""

    __slots__ = ("secret",)
    __match_args__ = ("secret",)
    secret: Secret

    def __init__(self, secret: Secret) -> None:
        self._init(secret=secret)


Verdict = Done | Next


def import_slip39() -> ModuleType:
    """adapters/slip39, imported only here: shamir-mnemonic is for threshold setups.

    Its import pulls in hashlib, which would load OpenSSL's libcrypto (about 6 ms and 3.4 MiB)
    for a PBKDF2 we never call (adapters/slip39.py, rule 1): without it hashlib uses Python's
    own SHA-256, as it does in the initramfs, which has no OpenSSL.
    """
    with without("_hashlib", user="hashlib"):
        from mandos.adapters import slip39
    return slip39


class Judge:
    """Turns decrypted payloads, server by server, into the password."""

    def __init__(
        self, decrypt: Callable[[str, bytes], Secret | None], slip39: Slip39 | None = None
    ) -> None:
        """``slip39``: what checks and combines shares (client/share_worker.py); by default
        adapters/slip39, imported at the first share."""
        self._decrypt = decrypt
        self._slip39 = slip39
        self._collector: shares.Collector | None = None  # made at the first share

    def judge(self, label: str, blob: bytes) -> Verdict:
        """The verdict on what the server ``label`` sent (the still-encrypted ``blob``)."""
        opened = self.open(label, blob)
        return self.collect(label, opened) if isinstance(opened, shares.Share) else opened

    def open(self, label: str, blob: bytes) -> Verdict | shares.Share:
        """The first half of judge(), without SLIP-39: the password, RETRY, or a share whose
        header reads well, for collect() to check and keep (rule 5)."""
        payload = self._decrypt(label, blob)
        if payload is None:
            return Next.RETRY
        if not shares.is_share(payload.reveal()):
            return Done(payload)
        try:
            return shares.parse(payload.reveal())
        except ShareError as exc:
            log.warning("%s: unusable share: %s", label, exc)
            return Next.RETRY

    def collect(self, label: str, share: shares.Share) -> Verdict:
        """The second half of judge(): check ``share``'s checksum (SLIP-39) and keep it."""
        slip39 = self._slip39 or import_slip39()
        try:
            slip39.verify(share)
        except ShareError as exc:
            log.warning("%s: unusable share: %s", label, exc)
            return Next.RETRY
        if self._collector is None:
            self._collector = shares.Collector(slip39.recover)
        return self._collect(label, self._collector, share)

    @staticmethod
    def _collect(label: str, collector: shares.Collector, share: shares.Share) -> Verdict:
        match collector.add(share):
            case shares.Combined(secret, _):
                log.info("%s: %s completes the set", label, share.describe())
                return Done(secret)
            case shares.Waiting(_, have, others):
                if others:
                    log.warning(
                        "%s: %s is not of set %s already held: shares of different sets are "
                        "never combined (one is from an older rotation?)",
                        label,
                        share.describe(),
                        ", ".join(others),
                    )
                log.info("%s: got %s; %d of %d", label, share.describe(), have, share.threshold)
            case shares.Duplicate(_):
                log.debug("%s: %s was already in hand", label, share.describe())
            case shares.Unusable(_, reason):
                log.warning("%s: %s", label, reason)
        return Next.FINISHED
