"""k-of-n threshold shares of a secret: the text inside an encrypted payload, and the rules for
combining them.

Rules of this module:
1. Pure: no I/O, no clock, no randomness (the set ID is passed in). The Shamir arithmetic and
   its checks are shamir-mnemonic's (SLIP-39), behind adapters/slip39.py, never ours: the
   Collector is given its ``recover`` function.
2. The encoding, version 1: ASCII lines ending in LF, exactly these four::

       MANDOS-SHARE 1
       set: <32 lower-case hex digits: the 128-bit set ID>
       share: I of N, threshold K
       <the SLIP-39 share: space-separated words>

   The SLIP-39 share is of one group (group threshold 1) with member threshold K and member
   index I-1; its identifier is the top 15 bits of the set ID. Its RS1024 checksum finds a
   corrupted share, and the header must agree with it (adapters/slip39.verify).
3. The shared value is ``set ID (16 bytes) || secret length (4 bytes, big-endian) || secret``,
   padded with one zero byte to an even length (SLIP-39 needs it). Combining checks SLIP-39's
   digest (a wrong or tampered share), then the set ID, the length and the padding: anything
   else is a ShareError, never a secret.
4. Shares of different sets never combine: the Collector keeps one group per set ID.
5. Messages name sets and share numbers, never share words or secret bytes.
"""

from __future__ import annotations

import binascii
import itertools

from mandos.core.errors import ShareError
from mandos.core.frozen import Frozen
from mandos.core.values import Secret

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:  # collections.abc imports collections (~0.3 MiB of the client's RSS)
    from collections.abc import Callable
    from typing import Final, TypeAlias

MAGIC: Final = b"MANDOS-SHARE "
VERSION: Final = 1
SET_ID_BYTES: Final = 16
#: SLIP-39 allows at most 16 members in a group.
MAX_SHARES: Final = 16
MIN_THRESHOLD: Final = 2  # with 1, every server holds the whole secret: use plain secrets
MAX_SECRET_BYTES: Final = 65536
#: A share of the largest secret is about 650 kB of words; anything larger is not a share.
MAX_PAYLOAD_BYTES: Final = 1 << 20
_ID_BITS: Final = 15  # SLIP-39 identifier length
_LENGTH_BYTES: Final = 4


_HEX: Final = frozenset(b"0123456789abcdef")
_LOWER: Final = frozenset(b"abcdefghijklmnopqrstuvwxyz")


def _set_id(line: bytes) -> bytes | None:
    """The set ID of a line ``set: <32 lower-case hex digits>``, else None."""
    digits = line[len(b"set: ") :]
    if not line.startswith(b"set: ") or len(digits) != 2 * SET_ID_BYTES:
        return None
    return binascii.unhexlify(digits) if _HEX.issuperset(digits) else None


def _small_number(text: bytes) -> int | None:
    """1 to 99 written without a leading zero, else None."""
    if 1 <= len(text) <= 2 and text.isdigit() and text[:1] != b"0":
        return int(text)
    return None


def _header(line: bytes) -> tuple[int, int, int] | None:
    """(index, count, threshold) of a line ``share: I of N, threshold K``, else None."""
    if not line.startswith(b"share: "):
        return None
    index, of, rest = line[len(b"share: ") :].partition(b" of ")
    count, comma, threshold = rest.partition(b", threshold ")
    i, n, k = (_small_number(text) for text in (index, count, threshold))
    if not (of and comma) or i is None or n is None or k is None:
        return None
    return i, n, k


def _words_read_well(line: bytes) -> bool:
    """Lower-case ASCII words, each followed by one space but the last."""
    return all(word and _LOWER.issuperset(word) for word in line.split(b" "))


if TYPE_CHECKING:
    #: recover(K shares of one set) -> the packed value; ShareError if they do not combine.
    Recover: TypeAlias = Callable[[list["Share"]], bytes]


def is_share(payload: bytes) -> bool:
    """True if ``payload`` claims to be a share (then parse() decides whether it is one)."""
    return payload.startswith(MAGIC)


def slip39_identifier(set_id: bytes) -> int:
    """The SLIP-39 identifier of a set: the top 15 bits of its ID."""
    return int.from_bytes(set_id[:2], "big") >> (16 - _ID_BITS)


def check_parameters(threshold: int, count: int) -> None:
    """Raise ShareError unless 2 <= threshold <= count <= 16."""
    if not MIN_THRESHOLD <= threshold <= count <= MAX_SHARES:
        raise ShareError(
            f"threshold {threshold} of {count} shares: need 2 <= threshold <= shares <= 16"
        )


def pack(secret: bytes, threshold: int, count: int, set_id: bytes) -> bytes:
    """The value to share (rule 3), after checking every parameter."""
    check_parameters(threshold, count)
    if len(set_id) != SET_ID_BYTES:
        raise ShareError(f"a set ID has {SET_ID_BYTES} bytes, not {len(set_id)}")
    if not secret:
        raise ShareError("an empty secret cannot be shared")
    if len(secret) > MAX_SECRET_BYTES:
        raise ShareError(f"a shared secret has at most {MAX_SECRET_BYTES} bytes")
    value = set_id + len(secret).to_bytes(_LENGTH_BYTES, "big") + secret
    return value + b"\0" * (len(value) % 2)


def unpack(value: bytes, set_id: bytes) -> Secret:
    """The secret in a recovered value; ShareError unless set ID, length and padding hold."""
    head = SET_ID_BYTES + _LENGTH_BYTES
    length = int.from_bytes(value[SET_ID_BYTES:head], "big")
    end = head + length
    if (
        value[:SET_ID_BYTES] != set_id
        or not 0 < length <= MAX_SECRET_BYTES
        or len(value) - end != end % 2
        or any(value[end:])
    ):
        name = set_id.hex()[:8]
        raise ShareError(f"shares of set {name} combine to garbage: one was tampered with")
    return Secret(value[head:end])


def encode(set_id: bytes, index: int, count: int, threshold: int, words: str) -> bytes:
    """The payload text of one share (rule 2)."""
    lines = [
        MAGIC + str(VERSION).encode(),
        b"set: " + set_id.hex().encode(),
        f"share: {index} of {count}, threshold {threshold}".encode(),
        words.encode("ascii"),
    ]
    return b"\n".join(lines) + b"\n"


class Share(Frozen):
    """One parsed share; its words are kept out of repr() and ==."""

    __slots__ = ("set_id", "index", "count", "threshold", "words")  # noqa: RUF023 - __init__'s order
    _compared = ("set_id", "index", "count", "threshold")
    set_id: bytes
    index: int  # 1..count
    count: int
    threshold: int
    words: str

    def __init__(self, set_id: bytes, index: int, count: int, threshold: int, words: str) -> None:
        self._init(set_id=set_id, index=index, count=count, threshold=threshold, words=words)

    @property
    def set_name(self) -> str:
        """The set ID as printed in log lines: its first 8 hex digits."""
        return self.set_id.hex()[:8]

    def describe(self) -> str:
        """'share I of N (threshold K) of set XXXXXXXX', for log lines."""
        of = f"{self.index} of {self.count} (threshold {self.threshold})"
        return f"share {of} of set {self.set_name}"


def expected_slip39_fields(share: Share) -> tuple[int, int, int, int, int, int]:
    """(identifier, group threshold, group count, group index, member index, member threshold)
    that the SLIP-39 share must carry for this header."""
    return (slip39_identifier(share.set_id), 1, 1, 0, share.index - 1, share.threshold)


def parse(payload: bytes) -> Share:
    """The share encoded in ``payload`` (its words unchecked: slip39.verify); ShareError names
    what is wrong."""
    if not is_share(payload):
        raise ShareError("not a Mandos share")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ShareError("share too large")
    lines = payload.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    version = lines[0][len(MAGIC) :]
    if version != str(VERSION).encode():
        raise ShareError(f"unsupported share version {version[:10]!r} (this client reads 1)")
    if len(lines) != 4:
        raise ShareError(f"a version 1 share has 4 lines, not {len(lines)}")
    set_id, head = _set_id(lines[1]), _header(lines[2])
    if set_id is None or head is None or not _words_read_well(lines[3]):
        raise ShareError("malformed share")
    index, count, threshold = head
    if not (MIN_THRESHOLD <= threshold <= count <= MAX_SHARES and index <= count):
        of = f"share {index} of {count}, threshold {threshold}"
        raise ShareError(f"impossible share header: {of}")
    return Share(set_id, index, count, threshold, lines[3].decode("ascii"))


def combine(shares: list[Share], recover: Recover) -> Secret:
    """The secret from exactly ``threshold`` distinct shares of one set; ShareError otherwise."""
    if not shares:
        raise ShareError("no shares to combine")
    first = shares[0]
    if any(s.set_id != first.set_id for s in shares):
        raise ShareError("shares of different sets never combine")
    if len({s.index for s in shares}) != len(shares) or len(shares) != first.threshold:
        raise ShareError(f"set {first.set_name} needs {first.threshold} distinct shares")
    return unpack(recover(shares), first.set_id)


# -- collecting shares as they arrive ------------------------------------------------------------


class Combined(Frozen):
    """Enough shares of one set arrived: here is the secret."""

    __slots__ = ("secret", "share")
    __match_args__ = ("secret", "share")
    secret: Secret
    share: Share

    def __init__(self, secret: Secret, share: Share) -> None:
        self._init(secret=secret, share=share)


class Waiting(Frozen):
    """Kept; ``have`` of ``share.threshold`` distinct shares of its set so far."""

    __slots__ = ("share", "have", "other_sets")  # noqa: RUF023 - as __init__
    __match_args__ = ("share", "have", "other_sets")
    share: Share
    have: int
    other_sets: tuple[str, ...]  # names of the other sets held: a rotation is mixed in

    def __init__(self, share: Share, have: int, other_sets: tuple[str, ...]) -> None:
        self._init(share=share, have=have, other_sets=other_sets)


class Duplicate(Frozen):
    """A share with this set and number is already held (another address of the same server?)."""

    __slots__ = ("share",)
    __match_args__ = ("share",)
    share: Share

    def __init__(self, share: Share) -> None:
        self._init(share=share)


class Unusable(Frozen):
    """The set's shares do not combine (a wrong or tampered share): nothing was returned."""

    __slots__ = ("share", "reason")  # noqa: RUF023 - as __init__
    __match_args__ = ("share", "reason")
    share: Share
    reason: str

    def __init__(self, share: Share, reason: str) -> None:
        self._init(share=share, reason=reason)


Outcome = Combined | Waiting | Duplicate | Unusable


class Collector:
    """Shares as they arrive, one group per set; a group combines once it has K distinct."""

    def __init__(self, recover: Recover) -> None:
        self._recover = recover
        self._sets: dict[bytes, dict[int, Share]] = {}

    def add(self, share: Share) -> Outcome:
        """Keep ``share``; combine its set if it now has enough (trying every K-subset)."""
        held = self._sets.setdefault(share.set_id, {})
        if share.index in held:
            return Duplicate(share)
        held[share.index] = share
        others = tuple(s.hex()[:8] for s in self._sets if s != share.set_id)
        if len(held) < share.threshold:
            return Waiting(share, len(held), others)
        reason = ""
        rest = [s for s in held.values() if s is not share]
        for subset in itertools.combinations(rest, share.threshold - 1):
            try:
                return Combined(combine([share, *subset], self._recover), share)
            except ShareError as exc:
                reason = str(exc)
        return Unusable(share, reason)
