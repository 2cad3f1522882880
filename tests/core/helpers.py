"""What the core tests share: a start time, durations, and a valid client configuration."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from mandos.core.config import ClientConfig
from mandos.core.values import ClientName, Fingerprint, KeyId, Secret

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)
KEY_A = KeyId("AA" * 32)
KEY_B = KeyId("BB" * 32)
FPR_A = Fingerprint("A1" * 20)


def client_config(name: str = "a", /, **changes: object) -> ClientConfig:
    """Client ``name``: secret ``TOPSECRET-<name>``; "a" has KEY_A and FPR_A, others KEY_B."""
    base = ClientConfig(
        name=ClientName(name),
        secret=Secret(b"TOPSECRET-" + name.encode()),
        key_id=KEY_A if name == "a" else KEY_B,
        fingerprint=FPR_A if name == "a" else None,
        checker="check %(name)s",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]
