"""Fuzz the state file: raw bytes through statefile.load, and mutated JSON of the right
outline through state_model.restore_into.

Invariants: only StateFileError escapes; a refused file is moved aside byte for byte; a state
the core refuses leaves the registry exactly as it was.
"""

from __future__ import annotations

import json
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mandos.adapters import statefile
from mandos.core import state_model
from mandos.core.config import ClientConfig
from mandos.core.errors import StateFileError
from mandos.core.registry import Registry
from mandos.core.values import ClientName, KeyId, Secret
from tests.fuzz.conftest import FUZZ

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=4),
    max_leaves=12,
)  # fmt: skip


def _registry() -> Registry:
    configs = [
        ClientConfig(name=ClientName(f"c{i}"), secret=Secret(b"s"), key_id=KeyId.parse(f"{i:064x}"),
                     checker="true", interval=timedelta(minutes=2))
        for i in range(3)
    ]  # fmt: skip
    return Registry(configs, NOW, random.Random(1))


@FUZZ
@given(st.binary(max_size=2000) | JSON.map(lambda v: json.dumps(v).encode()))
def test_load_refuses_only_with_state_file_error_and_keeps_the_bytes(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = statefile.state_path(tmp)
        path.write_bytes(raw)
        try:
            data = statefile.load(path)
        except StateFileError as exc:
            message = str(exc)
        else:
            assert isinstance(data, dict)
            return
        assert "\n" not in message
        (aside,) = Path(tmp).iterdir()
        assert aside.read_bytes() == raw


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found += _paths(inner, (*prefix, i))
    return found


@st.composite
def mutated_states(draw: st.DrawFn) -> Any:
    data: Any = json.loads(json.dumps(state_model.dump(_registry())))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        if not path:
            data = draw(JSON)
            continue
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    return data


@FUZZ
@given(mutated_states())
def test_restore_refuses_only_with_state_file_error_and_changes_nothing(data: Any) -> None:
    registry = _registry()
    before = state_model.dump(registry)
    try:
        state_model.restore_into(registry, data, NOW + timedelta(seconds=5))
    except StateFileError as exc:
        message = str(exc)
    else:
        return
    assert "\n" not in message
    assert state_model.dump(registry) == before
