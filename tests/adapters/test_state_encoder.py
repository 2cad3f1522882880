"""StateEncoder gives the bytes statefile.encode gives for dump(), converting only what changed."""

from __future__ import annotations

import json
import random
from datetime import timedelta

from mandos.adapters.statefile import StateEncoder
from mandos.core.config import ClientConfig
from mandos.core.registry import Registry
from mandos.core.state_model import dump
from tests.core.helpers import T0, client_config

LATER = T0 + timedelta(hours=3)
config = client_config


def saved(*configs: ClientConfig) -> Registry:
    reg = Registry(configs, T0, random.Random(0))
    for name in reg.names():
        reg.checked_ok(name, T0)
    return reg


def _file_bytes(reg: Registry) -> bytes:
    return json.dumps(dump(reg), separators=(",", ":"), sort_keys=True).encode()


def test_state_encoder_encodes_as_dump_and_again_only_what_changed() -> None:
    reg = saved(config("a"), config("b"), config("c"))
    encoder = StateEncoder()
    assert encoder(reg) == _file_bytes(reg)
    reg.checked_ok("a", LATER)
    reg.set_property("b", "Host", "elsewhere", LATER)
    second = encoder(reg)
    assert second == _file_bytes(reg)
    assert json.loads(second)["clients"]["b"]["settings"]["host"] == "elsewhere"
    reg.reload([config("a"), config("d")], LATER)
    assert encoder(reg) == _file_bytes(reg)
    assert json.loads(encoder(reg))["version"] == 1
