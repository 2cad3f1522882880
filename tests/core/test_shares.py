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

from mandos.adapters import slip39
from mandos.core import shares
from mandos.core.errors import ShareError
from mandos.core.values import Secret

split = slip39.make_shares


def parse(payload: bytes) -> shares.Share:
    """Parse and verify, as the client does."""
    share = shares.parse(payload)
    slip39.verify(share)
    return share


def combine(group: list[shares.Share]) -> Secret:
    return shares.combine(group, slip39.recover)


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
    parsed = [parse(p) for p in split(secret, k, n, set_id)]
    assert [s.index for s in parsed] == list(range(1, n + 1))
    for subset in itertools.combinations(parsed, k):
        assert combine(list(subset)) == Secret(secret)


@FAST
@given(secrets_st, k_of_n(), set_ids, st.data())
def test_fewer_than_k_never_combine(
    secret: bytes, kn: tuple[int, int], set_id: bytes, data: st.DataObject
) -> None:
    k, n = kn
    parsed = [parse(p) for p in split(secret, k, n, set_id)]
    order = data.draw(st.permutations(parsed))
    collector = shares.Collector(slip39.recover)
    for i, share in enumerate(order, 1):
        outcome = collector.add(share)
        if i < k:
            assert isinstance(outcome, shares.Waiting)
            assert outcome.have == i
            with pytest.raises(ShareError):
                combine(list(order[:i]))
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
    old = [parse(p) for p in split(a, k, n, id_a)]
    new = [parse(p) for p in split(b, k, n, id_b)]
    mixed = [*old[: k - 1], *new[: k - 1]]
    with pytest.raises(ShareError, match="different sets"):
        combine(mixed[:k])
    collector = shares.Collector(slip39.recover)
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
    s = Slip39Share.from_mnemonic(share.words)
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
    parsed = [parse(p) for p in split(secret, k, n, set_id)]
    victim = parsed[0]
    original = Slip39Share.from_mnemonic(victim.words).value
    value = data.draw(st.binary(min_size=len(original), max_size=len(original)))
    assume(value != original)
    bad = parse(_forge(victim, value))
    with pytest.raises(ShareError, match="tampered"):
        combine([bad, *parsed[1:k]])
    collector = shares.Collector(slip39.recover)
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
    payload = split(b"passphrase", 2, 3, set_id)[0].decode()
    head, words = payload.rsplit("\n", 2)[0], payload.rsplit("\n", 2)[1].split()
    i = data.draw(st.integers(0, len(words) - 1))
    other = data.draw(st.sampled_from(["academic", "zero", "wolf", "acid"]))
    assume(other != words[i])
    words[i] = other
    with pytest.raises(ShareError, match="corrupt"):
        parse(f"{head}\n{' '.join(words)}\n".encode())


def test_header_must_agree_with_the_share() -> None:
    payload = split(b"passphrase", 2, 3, bytes(16))[0]
    lied = payload.replace(b"share: 1 of 3", b"share: 2 of 3")
    with pytest.raises(ShareError, match="disagree"):
        parse(lied)
    other_set = payload.replace(b"set: " + bytes(16).hex().encode(), b"set: " + b"ff" * 16)
    with pytest.raises(ShareError, match="disagree"):
        parse(other_set)


def test_unknown_version_is_named() -> None:
    payload = split(b"passphrase", 2, 2, bytes(16))[0].replace(b"SHARE 1", b"SHARE 2")
    with pytest.raises(ShareError, match="unsupported share version b'2'"):
        parse(payload)


@pytest.mark.parametrize(("k", "n"), [(1, 3), (3, 2), (2, 17), (0, 0)])
def test_bad_parameters(k: int, n: int) -> None:
    with pytest.raises(ShareError, match="threshold"):
        split(b"x", k, n, bytes(16))


def test_repr_shows_no_words() -> None:
    share = parse(split(b"passphrase", 2, 2, bytes(16))[0])
    words = share.words.split()
    # Field names go first: "index" is itself a SLIP-39 word.
    shown = re.sub(r"\b(set_id|index|count|threshold)=", "=", repr(share))
    assert not any(re.search(rf"\b{w}\b", shown) for w in words)
    assert share.describe() == "share 1 of 2 (threshold 2) of set 00000000"


@given(st.binary(max_size=300).map(lambda b: shares.MAGIC + b))
def test_parse_raises_only_share_error(payload: bytes) -> None:
    with suppress(ShareError):
        parse(payload)


_TWO_SHARES = split(b"passphrase", 2, 3, bytes(16))[:2]


@settings(max_examples=60)
@given(st.data())
def test_parse_mutated_share_raises_only_share_error(data: st.DataObject) -> None:
    """A changed byte is refused at parse or at combination, or changes nothing."""
    payload = bytearray(_TWO_SHARES[1])
    i = data.draw(st.integers(0, len(payload) - 1))
    payload[i] = data.draw(st.integers(0, 255))
    with suppress(ShareError):
        share = parse(bytes(payload))
        assert combine([parse(_TWO_SHARES[0]), share]) == Secret(b"passphrase")


# -- every refusal, one example each (the core is covered by its own tests) -----------------------


@pytest.mark.parametrize(
    ("secret", "set_id", "message"),
    [
        (b"x", bytes(15), "a set ID has 16 bytes, not 15"),
        (b"", bytes(16), "an empty secret"),
        (b"x" * (shares.MAX_SECRET_BYTES + 1), bytes(16), "at most 65536 bytes"),
    ],
)
def test_pack_refuses(secret: bytes, set_id: bytes, message: str) -> None:
    with pytest.raises(ShareError, match=message):
        shares.pack(secret, 2, 3, set_id)


def _packed(secret: bytes = b"pw") -> bytes:
    return shares.pack(secret, 2, 3, bytes(16))


@pytest.mark.parametrize(
    "value",
    [
        b"\x01" + _packed()[1:],  # another set ID
        _packed()[:16] + (0).to_bytes(4, "big") + _packed()[20:],  # zero length
        _packed()[:16] + (3).to_bytes(4, "big") + _packed()[20:],  # length past the end
        _packed(b"odd")[:-1] + b"\x01",  # the padding byte is not zero
        _packed(b"odd") + b"\x00",  # one zero byte too many
    ],
)
def test_unpack_refuses_garbage(value: bytes) -> None:
    with pytest.raises(ShareError, match="combine to garbage"):
        shares.unpack(value, bytes(16))


def test_unpack_round_trip() -> None:
    for secret in (b"pw", b"odd", b"\x00" * 7):
        assert shares.unpack(_packed(secret), bytes(16)) == Secret(secret)


_GOOD = split(b"passphrase", 2, 3, bytes(16))[0]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not a share", "not a Mandos share"),
        (shares.MAGIC + b"1\n" + b"x" * shares.MAX_PAYLOAD_BYTES, "share too large"),
        (_GOOD + b"extra line\n", "4 lines, not 5"),
        (_GOOD.replace(b"threshold 2", b"threshold 9"), "impossible share header"),
        (_GOOD.replace(b"share: 1 of 3", b"share: 4 of 3"), "impossible share header"),
        (_GOOD.replace(b"set: ", b"sets: "), "malformed share"),
        (_GOOD.rstrip(b"\n") + b" WORD\n", "malformed share"),
    ],
)
def test_parse_refuses(payload: bytes, message: str) -> None:
    with pytest.raises(ShareError, match=message):
        shares.parse(payload)


def test_combine_nothing() -> None:
    with pytest.raises(ShareError, match="no shares"):
        shares.combine([], slip39.recover)


def test_combine_needs_distinct_shares() -> None:
    one = parse(_GOOD)
    with pytest.raises(ShareError, match="needs 2 distinct shares"):
        shares.combine([one, one], slip39.recover)


def test_a_duplicate_is_reported_and_changes_nothing() -> None:
    collector = shares.Collector(slip39.recover)
    first = collector.add(parse(_GOOD))
    assert isinstance(first, shares.Waiting)
    assert isinstance(collector.add(parse(_GOOD)), shares.Duplicate)


LINE_ALPHABET = st.sampled_from(
    [
        b"set: ",
        b"share: ",
        b" of ",
        b", threshold ",
        b"0",
        b"1",
        b"9",
        b"10",
        b"a",
        b"f",
        b"g",
        b"z",
        b"A",
        b" ",
        b",",
        b"-",
        b"\xff",
    ]
)


@given(st.lists(LINE_ALPHABET, max_size=12).map(b"".join), st.data())
def test_line_checks_agree_with_the_grammar(line: bytes, data: st.DataObject) -> None:
    """The set, header and words lines are read without re (it is not on the client's boot
    path): each check accepts exactly what the grammar's regular expression matches."""
    hexes = data.draw(st.binary(min_size=16, max_size=16)).hex().encode()
    for candidate in (line, b"set: " + hexes, b"set: " + hexes[:-1] + line):
        got = shares._set_id(candidate)
        match = re.fullmatch(rb"set: ([0-9a-f]{32})", candidate)
        assert got == (bytes.fromhex(match.group(1).decode()) if match else None)
    number = rb"([1-9][0-9]?)"
    header = re.fullmatch(
        rb"share: " + number + rb" of " + number + rb", threshold " + number, line
    )
    assert shares._header(line) == (tuple(int(g) for g in header.groups()) if header else None)
    assert shares._words_read_well(line) == bool(re.fullmatch(rb"[a-z]+( [a-z]+)*", line))


@pytest.mark.parametrize(
    "line",
    [b"share: 1 of 3, threshold 2", b"share: 16 of 16, threshold 16",
     b"share: 01 of 3, threshold 2", b"share: 1 of 3, threshold 2 ",
     b"share:  1 of 3, threshold 2", b"share: 1 of 3 , threshold 2"],
)  # fmt: skip
def test_header_lines(line: bytes) -> None:
    header = re.fullmatch(rb"share: ([1-9][0-9]?) of ([1-9][0-9]?), threshold ([1-9][0-9]?)", line)
    assert shares._header(line) == (tuple(int(g) for g in header.groups()) if header else None)
