"""core/shares.py: any K of N combine to the secret, fewer never do, other sets and tampered
shares are refused and never combined, and the parser raises only ShareError."""

from __future__ import annotations

import itertools
import re
from contextlib import suppress

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from shamir_mnemonic import Share as Slip39Share

from mandos.core import shares
from mandos.core.errors import ShareError
from mandos.core.values import Secret

secrets_st = st.binary(min_size=1, max_size=200)
set_ids = st.binary(min_size=16, max_size=16)


@st.composite
def k_of_n(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(2, 6))
    return draw(st.integers(2, n)), n


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(secrets_st, k_of_n(), set_ids)
def test_any_k_of_n_combine_to_the_secret(
    secret: bytes, kn: tuple[int, int], set_id: bytes
) -> None:
    k, n = kn
    parsed = [shares.parse(p) for p in shares.split(secret, k, n, set_id)]
    assert [s.index for s in parsed] == list(range(1, n + 1))
    for subset in itertools.combinations(parsed, k):
        assert shares.combine(list(subset)) == Secret(secret)


@FAST
@given(secrets_st, k_of_n(), set_ids, st.data())
def test_fewer_than_k_never_combine(
    secret: bytes, kn: tuple[int, int], set_id: bytes, data: st.DataObject
) -> None:
    k, n = kn
    parsed = [shares.parse(p) for p in shares.split(secret, k, n, set_id)]
    order = data.draw(st.permutations(parsed))
    collector = shares.Collector()
    for i, share in enumerate(order, 1):
        outcome = collector.add(share)
        if i < k:
            assert isinstance(outcome, shares.Waiting)
            assert outcome.have == i
            with pytest.raises(ShareError):
                shares.combine(list(order[:i]))
        else:
            assert isinstance(outcome, shares.Combined)
            assert outcome.secret == Secret(secret)
            break


@FAST
@given(secrets_st, secrets_st, k_of_n(), set_ids, set_ids)
def test_shares_of_two_sets_never_combine(
    a: bytes, b: bytes, kn: tuple[int, int], id_a: bytes, id_b: bytes
) -> None:
    assume(id_a != id_b)
    k, n = kn
    old = [shares.parse(p) for p in shares.split(a, k, n, id_a)]
    new = [shares.parse(p) for p in shares.split(b, k, n, id_b)]
    mixed = [*old[: k - 1], *new[: k - 1]]
    with pytest.raises(ShareError, match="different sets"):
        shares.combine(mixed[:k])
    collector = shares.Collector()
    outcomes = [collector.add(s) for s in mixed]
    assert not any(isinstance(o, shares.Combined) for o in outcomes)
    last = outcomes[-1]
    assert isinstance(last, shares.Waiting)
    assert last.other_sets == (id_a.hex()[:8],)
    # The newer set still completes once its K-th share arrives.
    done = collector.add(new[k - 1])
    assert isinstance(done, shares.Combined)
    assert done.secret == Secret(b)


def _forge(share: shares.Share, value: bytes) -> bytes:
    """A well-formed share (valid checksum) with different share bytes: a tampering server."""
    s = share.slip39
    forged = Slip39Share(
        s.identifier, s.extendable, s.iteration_exponent, s.group_index,
        s.group_threshold, s.group_count, s.index, s.member_threshold, value,
    )  # fmt: skip
    return (
        f"MANDOS-SHARE 1\nset: {share.set_id.hex()}\n"
        f"share: {share.index} of {share.count}, threshold {share.threshold}\n"
        f"{forged.mnemonic()}\n"
    ).encode()


@FAST
@given(secrets_st, k_of_n(), set_ids, st.data())
def test_a_tampered_share_is_never_combined(
    secret: bytes, kn: tuple[int, int], set_id: bytes, data: st.DataObject
) -> None:
    k, n = kn
    parsed = [shares.parse(p) for p in shares.split(secret, k, n, set_id)]
    victim = parsed[0]
    size = len(victim.slip39.value)
    value = data.draw(st.binary(min_size=size, max_size=size))
    assume(value != victim.slip39.value)
    bad = shares.parse(_forge(victim, value))
    with pytest.raises(ShareError, match="tampered"):
        shares.combine([bad, *parsed[1:k]])
    collector = shares.Collector()
    outcomes = [collector.add(s) for s in [bad, *parsed[1:k]]]
    assert isinstance(outcomes[-1], shares.Unusable)
    # A good K-th share from another server still unlocks, without the tampered one.
    if n > k:
        done = collector.add(parsed[k])
        assert isinstance(done, shares.Combined)
        assert done.secret == Secret(secret)


@FAST
@given(set_ids, st.data())
def test_a_corrupted_word_is_refused_at_parse(set_id: bytes, data: st.DataObject) -> None:
    payload = shares.split(b"passphrase", 2, 3, set_id)[0].decode()
    head, words = payload.rsplit("\n", 2)[0], payload.rsplit("\n", 2)[1].split()
    i = data.draw(st.integers(0, len(words) - 1))
    other = data.draw(st.sampled_from(["academic", "zero", "wolf", "acid"]))
    assume(other != words[i])
    words[i] = other
    with pytest.raises(ShareError, match="corrupt"):
        shares.parse(f"{head}\n{' '.join(words)}\n".encode())


def test_header_must_agree_with_the_share() -> None:
    payload = shares.split(b"passphrase", 2, 3, bytes(16))[0]
    lied = payload.replace(b"share: 1 of 3", b"share: 2 of 3")
    with pytest.raises(ShareError, match="disagree"):
        shares.parse(lied)
    other_set = payload.replace(b"set: " + bytes(16).hex().encode(), b"set: " + b"ff" * 16)
    with pytest.raises(ShareError, match="disagree"):
        shares.parse(other_set)


def test_unknown_version_is_named() -> None:
    payload = shares.split(b"passphrase", 2, 2, bytes(16))[0].replace(b"SHARE 1", b"SHARE 2")
    with pytest.raises(ShareError, match="unsupported share version b'2'"):
        shares.parse(payload)


@pytest.mark.parametrize(("k", "n"), [(1, 3), (3, 2), (2, 17), (0, 0)])
def test_bad_parameters(k: int, n: int) -> None:
    with pytest.raises(ShareError, match="threshold"):
        shares.split(b"x", k, n, bytes(16))


def test_repr_shows_no_words() -> None:
    share = shares.parse(shares.split(b"passphrase", 2, 2, bytes(16))[0])
    words = share.slip39.mnemonic().split()
    assert not any(re.search(rf"\b{w}\b", repr(share)) for w in words)
    assert share.describe() == "share 1 of 2 (threshold 2) of set 00000000"


@given(st.binary(max_size=300).map(lambda b: shares.MAGIC + b))
def test_parse_raises_only_share_error(payload: bytes) -> None:
    with suppress(ShareError):
        shares.parse(payload)


_TWO_SHARES = shares.split(b"passphrase", 2, 3, bytes(16))[:2]


@settings(max_examples=60)
@given(st.data())
def test_parse_mutated_share_raises_only_share_error(data: st.DataObject) -> None:
    """A changed byte is refused at parse or at combination, or changes nothing."""
    payload = bytearray(_TWO_SHARES[1])
    i = data.draw(st.integers(0, len(payload) - 1))
    payload[i] = data.draw(st.integers(0, 255))
    with suppress(ShareError):
        share = shares.parse(bytes(payload))
        assert shares.combine([shares.parse(_TWO_SHARES[0]), share]) == Secret(b"passphrase")
