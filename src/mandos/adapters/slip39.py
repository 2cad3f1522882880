"""Shamir's secret sharing by shamir-mnemonic (SLIP-39); the only importer of that library.

Rules of this module:
1. One SLIP-39 group (group threshold 1) of N members with member threshold K; the shared value
   is core/shares.py's packed value, split as it is (``split_ems``/``recover_ems``): not through
   ``generate_mnemonics``, whose PBKDF2 cipher needs OpenSSL's ``_hashlib`` on Python 3.12+,
   which the initramfs leaves out (docs/decisions.md).
2. The library draws the polynomials' randomness itself (``secrets``); the set ID is ours.
3. Every library error leaves as ShareError with a one-line message naming the share, never its
   words.
"""

from __future__ import annotations

from shamir_mnemonic import EncryptedMasterSecret, MnemonicError, split_ems
from shamir_mnemonic import Share as Slip39Share
from shamir_mnemonic.shamir import ShareGroup, recover_ems

from mandos.core import shares
from mandos.core.errors import ShareError


def make_shares(secret: bytes, threshold: int, count: int, set_id: bytes) -> list[bytes]:
    """The ``count`` encoded shares of ``secret``, any ``threshold`` of which rebuild it."""
    value = shares.pack(secret, threshold, count, set_id)
    ems = EncryptedMasterSecret(shares.slip39_identifier(set_id), False, 0, value)
    (group,) = split_ems(1, [(threshold, count)], ems)
    return [
        shares.encode(set_id, s.index + 1, count, s.member_threshold, s.mnemonic()) for s in group
    ]


def _decode(share: shares.Share) -> Slip39Share:
    try:
        return Slip39Share.from_mnemonic(share.words)
    except MnemonicError as exc:
        raise ShareError(f"{share.describe()} is corrupt: {exc}") from None


def verify(share: shares.Share) -> None:
    """Raise ShareError unless the share's checksum holds and it agrees with its header."""
    s = _decode(share)
    got = (s.identifier, s.group_threshold, s.group_count, s.group_index, s.index,
           s.member_threshold)  # fmt: skip
    if got != shares.expected_slip39_fields(share):
        raise ShareError(f"{share.describe()}: header and share disagree")


def recover(group: list[shares.Share]) -> bytes:
    """The packed value from exactly K shares of one set; ShareError if they do not combine."""
    members = ShareGroup()
    try:
        for share in group:
            members.add(_decode(share))
        value: bytes = recover_ems({0: members}).ciphertext
    except MnemonicError:
        raise ShareError(
            f"shares of set {group[0].set_name} do not combine: one is wrong or was tampered with"
        ) from None
    return value
