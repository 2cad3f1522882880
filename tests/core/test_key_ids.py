"""A client's key_id may list several key IDs (a key rotation); each finds the client."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mandos.core.client_state import ClientState
from mandos.core.config_files import parse_clients_conf
from mandos.core.errors import ConfigError
from mandos.core.registry import Registry
from mandos.core.values import KeyId

A, B, C = "aa" * 32, "BB" * 32, "cC" * 32
SECRET = base64.b64encode(b"s").decode()


def section(key_id: str) -> str:
    return f"[c]\nkey_id = {key_id}\nsecret = {SECRET}\n"


def test_several_key_ids_the_first_is_key_id() -> None:
    (c,) = parse_clients_conf(section(f"{A} {B}\n    {C}"))
    assert c.key_id == KeyId.parse(A)
    assert c.other_key_ids == (KeyId.parse(B), KeyId.parse(C))


def test_one_key_id_written_with_spaces_is_still_one() -> None:
    spaced = " ".join(A[i : i + 8] for i in range(0, 64, 8))
    (c,) = parse_clients_conf(section(spaced))
    assert (c.key_id, c.other_key_ids) == (KeyId.parse(A), ())


def test_a_bad_second_key_id_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"^clients\.conf:2: key_id: "):
        parse_clients_conf(section(f"{A} {'0' * 63}x"))


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=4), st.data())
def test_any_list_of_key_ids_round_trips(raw: list[bytes], data: st.DataObject) -> None:
    ids = [r.hex() for r in raw]
    gaps = [data.draw(st.sampled_from([" ", "  ", "\t", "\n    "])) for _ in ids[1:]]
    text = ids[0] + "".join(g + i for g, i in zip(gaps, ids[1:], strict=True))
    (c,) = parse_clients_conf(section(text))
    assert [c.key_id, *c.other_key_ids] == [KeyId.parse(i) for i in ids]


def test_registry_finds_the_client_by_each_key_id() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    configs = parse_clients_conf(section(f"{A} {B}") + f"[d]\nkey_id = {C}\nsecret = {SECRET}\n")
    reg = Registry(configs, now, random.Random(0))
    assert reg.find(KeyId.parse(A)) == "c"
    assert reg.find(KeyId.parse(B)) == "c"
    assert reg.find(KeyId.parse(C)) == "d"


def test_dbus_keyid_shows_the_first_key_id() -> None:
    (c,) = parse_clients_conf(section(f"{A} {B}"))
    state = ClientState.fresh(c, datetime(2026, 1, 1, tzinfo=UTC))
    assert state.properties()["KeyID"] == A.upper()
