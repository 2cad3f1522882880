"""core/frozen.py: what @dataclass(frozen=True, slots=True) gave the classes built on it."""

from __future__ import annotations

import copy
import pickle

import pytest

from mandos.client.args import ClientOptions, ConnectTarget
from mandos.core.errors import ConfigError
from mandos.core.frozen import Frozen
from mandos.core.shares import Share
from mandos.core.values import ClientName, Fingerprint, KeyId

KEY = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"


def test_equality_and_hash_by_value_within_one_class() -> None:
    assert KeyId(KEY) == KeyId.parse(KEY.lower())
    assert hash(KeyId(KEY)) == hash(KeyId.parse(KEY.lower()))
    assert KeyId(KEY) != Fingerprint(KEY[:40])
    assert Fingerprint(KEY[:40]) != ClientName(KEY[:40])  # same field value, other class
    assert KeyId(KEY) != (KEY,)
    assert len({KeyId(KEY), KeyId.parse(KEY)}) == 1


def test_repr_names_class_and_fields() -> None:
    assert repr(KeyId(KEY)) == f"KeyId(hex='{KEY}')"
    assert repr(ClientName("web")) == "ClientName(value='web')"


def test_validation_runs_in_init() -> None:
    with pytest.raises(ConfigError):
        KeyId("abc")
    with pytest.raises(ConfigError):
        ClientName(" padded ")


def test_fields_cannot_change() -> None:
    key = KeyId(KEY)
    with pytest.raises(AttributeError, match="hex"):
        key.hex = "0" * 64  # mypy cannot see this one (no @dataclass)
    with pytest.raises(AttributeError, match="hex"):
        del key.hex
    with pytest.raises(AttributeError):
        key.other = 1  # type: ignore[attr-defined]
    assert key.hex == KEY


def test_copy_and_pickle_keep_the_value() -> None:
    key = KeyId(KEY)
    assert copy.copy(key) == key
    assert copy.deepcopy(key) == key
    assert pickle.loads(pickle.dumps(key)) == key  # noqa: S301 - our own bytes
    share = Share(b"\x01" * 16, 1, 3, 2, "secret words")
    assert pickle.loads(pickle.dumps(share)).words == "secret words"  # noqa: S301
    opts = ClientOptions(connect=ConnectTarget("192.0.2.1", 9, ipv6=False), debug=True)
    assert copy.copy(opts) == opts  # keyword-only __init__
    assert opts._replace(debug=False) == ClientOptions(connect=opts.connect)


def test_match_by_position() -> None:
    match KeyId(KEY):
        case KeyId(hex_digits):
            assert hex_digits == KEY
        case _:  # pragma: no cover - the case above matches
            pytest.fail("no match")


def test_compared_leaves_a_field_out_of_eq_hash_and_repr() -> None:
    one = Share(b"\x01" * 16, 1, 3, 2, "secret words")
    other = Share(b"\x01" * 16, 1, 3, 2, "other words")
    assert one == other
    assert hash(one) == hash(other)
    assert "words" not in repr(one)
    assert "secret" not in repr(one)


def test_subclass_without_compared_compares_every_slot() -> None:
    class Pair(Frozen):
        __slots__ = ("a", "b")
        a: int
        b: int

        def __init__(self, a: int, b: int) -> None:
            self._init(a=a, b=b)

    assert Pair(1, 2) == Pair(1, 2)
    assert Pair(1, 2) != Pair(1, 3)
    assert repr(Pair(1, 2)).endswith("Pair(a=1, b=2)")
