"""k-of-n threshold shares of a secret: the text inside an encrypted payload, and combining them.

Rules of this module:
1. Pure: no I/O, no clock. The set ID is passed in (randomness is the caller's); the Shamir
   arithmetic and its checks are shamir-mnemonic's (SLIP-39, docs/decisions.md), never ours.
2. The encoding, version 1: ASCII lines ending in LF, exactly these four::

       MANDOS-SHARE 1
       set: <32 lower-case hex digits: the 128-bit set ID>
       share: I of N, threshold K
       <the SLIP-39 share: space-separated words>

   The SLIP-39 share is of one group (group threshold 1) with member threshold K and member
   index I-1; its identifier is the top 15 bits of the set ID. Its RS1024 checksum finds a
   corrupted share, and the header must agree with it word for word.
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
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from mandos.core.errors import ShareError
from mandos.core.values import Secret

if TYPE_CHECKING:  # shamir_mnemonic is imported when a share is made or read, not before:
    # a client that never sees a share never pays for it (mandos-client's start-up)
    from shamir_mnemonic import Share as Slip39Share

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
_HEADER: Final = re.compile(rb"share: ([1-9][0-9]?) of ([1-9][0-9]?), threshold ([1-9][0-9]?)")
_SET: Final = re.compile(rb"set: ([0-9a-f]{32})")


def is_share(payload: bytes) -> bool:
    """True if ``payload`` claims to be a share (then parse() decides whether it is one)."""
    return payload.startswith(MAGIC)


def _slip39_identifier(set_id: bytes) -> int:
    return int.from_bytes(set_id[:2], "big") >> (16 - _ID_BITS)


def check_parameters(threshold: int, count: int) -> None:
    """Raise ShareError unless 2 <= threshold <= count <= 16."""
    if not MIN_THRESHOLD <= threshold <= count <= MAX_SHARES:
        raise ShareError(
            f"threshold {threshold} of {count} shares: need 2 <= threshold <= shares <= 16"
        )


def split(secret: bytes, threshold: int, count: int, set_id: bytes) -> list[bytes]:
    """The ``count`` encoded shares of ``secret``, any ``threshold`` of which rebuild it."""
    check_parameters(threshold, count)
    if len(set_id) != SET_ID_BYTES:
        raise ShareError(f"a set ID has {SET_ID_BYTES} bytes, not {len(set_id)}")
    if not secret:
        raise ShareError("an empty secret cannot be shared")
    if len(secret) > MAX_SECRET_BYTES:
        raise ShareError(f"a shared secret has at most {MAX_SECRET_BYTES} bytes")
    value = set_id + len(secret).to_bytes(4, "big") + secret
    value += b"\0" * (len(value) % 2)
    from shamir_mnemonic import EncryptedMasterSecret, split_ems

    ems = EncryptedMasterSecret(_slip39_identifier(set_id), False, 0, value)
    (group,) = split_ems(1, [(threshold, count)], ems)
    return [_encode(set_id, s, count) for s in group]


def _encode(set_id: bytes, share: Slip39Share, count: int) -> bytes:
    lines = [
        MAGIC + str(VERSION).encode(),
        b"set: " + set_id.hex().encode(),
        f"share: {share.index + 1} of {count}, threshold {share.member_threshold}".encode(),
        share.mnemonic().encode("ascii"),
    ]
    return b"\n".join(lines) + b"\n"


@dataclass(frozen=True, slots=True)
class Share:
    """One parsed share; its words are kept out of repr()."""

    set_id: bytes
    index: int  # 1..count
    count: int
    threshold: int
    slip39: Slip39Share = field(repr=False, compare=False)

    @property
    def set_name(self) -> str:
        """The set ID as printed in log lines: its first 8 hex digits."""
        return self.set_id.hex()[:8]

    def describe(self) -> str:
        """'share I of N (threshold K) of set XXXXXXXX', for log lines."""
        of = f"{self.index} of {self.count} (threshold {self.threshold})"
        return f"share {of} of set {self.set_name}"


def parse(payload: bytes) -> Share:
    """The share encoded in ``payload``; ShareError names what is wrong."""
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
    set_match = _SET.fullmatch(lines[1])
    head = _HEADER.fullmatch(lines[2])
    if set_match is None or head is None:
        raise ShareError("malformed share header")
    set_id = binascii.unhexlify(set_match.group(1))
    index, count, threshold = (int(g) for g in head.groups())
    if not (MIN_THRESHOLD <= threshold <= count <= MAX_SHARES and index <= count):
        raise ShareError(
            f"impossible share header: share {index} of {count}, threshold {threshold}"
        )
    from shamir_mnemonic import MnemonicError
    from shamir_mnemonic import Share as Slip39Share

    try:
        words = lines[3].decode("ascii")
        slip = Slip39Share.from_mnemonic(words)
    except (UnicodeDecodeError, MnemonicError) as exc:
        raise ShareError(f"share {index} of set {set_id.hex()[:8]} is corrupt: {exc}") from None
    expected = (_slip39_identifier(set_id), 1, 1, 0, index - 1, threshold)
    got = (slip.identifier, slip.group_threshold, slip.group_count, slip.group_index,
           slip.index, slip.member_threshold)  # fmt: skip
    if got != expected:
        raise ShareError(f"share {index} of set {set_id.hex()[:8]}: header and share disagree")
    return Share(set_id, index, count, threshold, slip)


def combine(shares: list[Share]) -> Secret:
    """The secret from exactly ``threshold`` distinct shares of one set; ShareError otherwise."""
    if not shares:
        raise ShareError("no shares to combine")
    first = shares[0]
    if any(s.set_id != first.set_id for s in shares):
        raise ShareError("shares of different sets never combine")
    if len({s.index for s in shares}) != len(shares) or len(shares) != first.threshold:
        raise ShareError(f"set {first.set_name} needs {first.threshold} distinct shares")
    from shamir_mnemonic import MnemonicError
    from shamir_mnemonic.shamir import ShareGroup, recover_ems

    group = ShareGroup()
    try:
        for s in shares:
            group.add(s.slip39)
        value = recover_ems({0: group}).ciphertext
    except MnemonicError:
        raise ShareError(
            f"shares of set {first.set_name} do not combine: one is wrong or was tampered with"
        ) from None
    return _unpack(value, first)


def _unpack(value: bytes, first: Share) -> Secret:
    length = int.from_bytes(value[SET_ID_BYTES : SET_ID_BYTES + 4], "big")
    end = SET_ID_BYTES + 4 + length
    if (
        value[:SET_ID_BYTES] != first.set_id
        or not 0 < length <= MAX_SECRET_BYTES
        or len(value) - end != (end % 2)
        or any(value[end:])
    ):
        raise ShareError(
            f"shares of set {first.set_name} combine to garbage: one was tampered with"
        )
    return Secret(value[SET_ID_BYTES + 4 : end])


# -- collecting shares as they arrive ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Combined:
    """Enough shares of one set arrived: here is the secret."""

    secret: Secret
    share: Share


@dataclass(frozen=True, slots=True)
class Waiting:
    """Kept; ``have`` of ``share.threshold`` distinct shares of its set so far."""

    share: Share
    have: int
    other_sets: tuple[str, ...]  # names of the other sets held: a rotation is mixed in


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A share with this set and number is already held (another address of the same server?)."""

    share: Share


@dataclass(frozen=True, slots=True)
class Unusable:
    """The set's shares do not combine (a wrong or tampered share): nothing was returned."""

    share: Share
    reason: str


Outcome = Combined | Waiting | Duplicate | Unusable


class Collector:
    """Shares as they arrive, one group per set; a group combines once it has K distinct."""

    def __init__(self) -> None:
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
                return Combined(combine([share, *subset]), share)
            except ShareError as exc:
                reason = str(exc)
        return Unusable(share, reason)
