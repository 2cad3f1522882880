"""The registry as a plain, versioned, JSON-able dict, and back (REFERENCE A6).

Format, version 1::

    {"version": 1, "clients": {NAME: {
        "seen":     {SETTING: value, ..., "enabled": bool},  # clients.conf values last loaded
        "settings": {SETTING: value, ...},                   # the runtime (effective) values
        "enabled": bool, "created": TIME, "expires": TIME|null, "last_enabled": TIME|null,
        "last_checked_ok": TIME|null, "last_approval_request": TIME|null,
        "last_checker_status": int, "last_checker_signal": int|null}}}

SETTINGs are the writable settings of ``PERSISTED``; durations are whole microseconds, TIME is
ISO 8601 with a UTC offset. Unknown keys are ignored (room to grow without a new version).

Decisions:

- **The secret is never stored.** A secret changed at runtime (D-Bus ``Secret``) is lost at a
  restart and the clients.conf secret is used again; the reference encrypted it with a
  passphrase derived from the config secret, which protected nothing the config did not. Key ID
  and fingerprint are not stored either: they always come from clients.conf.
- Precedence on restore: a setting whose clients.conf value differs from the saved ``seen``
  value takes the file's value; otherwise the saved runtime value stays. The same holds for
  ``enabled``. Clients gone from clients.conf are dropped; new ones start fresh.
- An enabled client whose expiry passed while the server was down stays enabled only if its last
  checker succeeded (then it expires ``timeout`` from now); else it is disabled with a warning.
- Anything malformed raises ``StateFileError`` with a one-line message naming the place.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from mandos.core.client_state import NEVER_CHECKED, ClientState, add_time
from mandos.core.config import ClientConfig
from mandos.core.effects import Effect, Log
from mandos.core.errors import StateFileError
from mandos.core.registry import Registry

VERSION: Final = 1
_US: Final = timedelta(microseconds=1)
_MAX_US: Final = timedelta.max // _US


def _duration_out(value: object) -> object:
    assert isinstance(value, timedelta)
    return value // _US


def _duration_in(raw: object) -> timedelta:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= _MAX_US:
        raise ValueError("expected a whole number of microseconds")
    return timedelta(microseconds=raw)


def _str_in(raw: object) -> str:
    if not isinstance(raw, str):
        raise TypeError("expected a string")
    return raw


def _bool_in(raw: object) -> bool:
    if not isinstance(raw, bool):
        raise TypeError("expected true or false")
    return raw


def _same(value: object) -> object:
    return value


#: Settings stored per client: ClientConfig field -> (to JSON, from JSON).
PERSISTED: Final[dict[str, tuple[Callable[[object], object], Callable[[object], object]]]] = {
    "timeout": (_duration_out, _duration_in),
    "extended_timeout": (_duration_out, _duration_in),
    "interval": (_duration_out, _duration_in),
    "approval_delay": (_duration_out, _duration_in),
    "approval_duration": (_duration_out, _duration_in),
    "checker": (_same, _str_in),
    "host": (_same, _str_in),
    "approved_by_default": (_same, _bool_in),
}


def _time_out(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _time_in(raw: object) -> datetime:
    if not isinstance(raw, str):
        raise TypeError("expected an ISO 8601 time")
    parsed = datetime.fromisoformat(raw)
    if parsed.tzinfo is None:
        raise ValueError("expected a time with a UTC offset")
    return parsed.astimezone(UTC)


def _opt_time_in(raw: object) -> datetime | None:
    return None if raw is None else _time_in(raw)


def _status_in(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not NEVER_CHECKED <= raw <= 255:
        raise ValueError("expected an exit status (-2 to 255)")
    return raw


def _signal_in(raw: object) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 255:
        raise ValueError("expected a signal number or null")
    return raw


def _settings_out(config: ClientConfig) -> dict[str, object]:
    return {f: out(getattr(config, f)) for f, (out, _) in PERSISTED.items()}


def client_record(s: ClientState) -> dict[str, object]:
    """One client's part of :func:`dump`."""
    return {
        "seen": {**_settings_out(s.file_config), "enabled": s.file_config.enabled},
        "settings": _settings_out(s.config),
        "enabled": s.enabled,
        "created": _time_out(s.created),
        "expires": _time_out(s.expires),
        "last_enabled": _time_out(s.last_enabled),
        "last_checked_ok": _time_out(s.last_checked_ok),
        "last_approval_request": _time_out(s.last_approval_request),
        "last_checker_status": s.last_checker_status,
        "last_checker_signal": s.last_checker_signal,
    }


def client_record_key(s: ClientState) -> tuple[object, ...]:
    """Everything :func:`client_record` reads: equal keys, equal records (configs are frozen)."""
    return (
        s.config,
        s.file_config,
        s.enabled,
        s.created,
        s.expires,
        s.last_enabled,
        s.last_checked_ok,
        s.last_approval_request,
        s.last_checker_status,
        s.last_checker_signal,
    )


def dump(registry: Registry) -> dict[str, object]:
    """The registry's persistent state as a JSON-able dict (no secrets)."""
    return {"version": VERSION, "clients": {s.name: client_record(s) for s in registry.states()}}


@dataclasses.dataclass(frozen=True)
class _Saved:
    """One client's record, validated."""

    seen: dict[str, Any]
    settings: dict[str, Any]
    runtime: dict[str, Any]


#: Runtime fields of a record -> decoder (ClientState field of the same name).
_RUNTIME: Final[dict[str, Callable[[object], object]]] = {
    "enabled": _bool_in,
    "created": _time_in,
    "expires": _opt_time_in,
    "last_enabled": _opt_time_in,
    "last_checked_ok": _opt_time_in,
    "last_approval_request": _opt_time_in,
    "last_checker_status": _status_in,
    "last_checker_signal": _signal_in,
}


def _fields(
    where: str, raw: object, decoders: Mapping[str, Callable[[object], object]]
) -> dict[str, Any]:
    """Decode every field ``decoders`` names from the object ``raw``."""
    if not isinstance(raw, dict):
        raise StateFileError(f"state file: {where}: expected an object")
    values: dict[str, Any] = {}
    for key, decode in decoders.items():
        if key not in raw:
            raise StateFileError(f"state file: {where}.{key}: missing")
        try:
            values[key] = decode(raw[key])
        except (ValueError, TypeError, OverflowError) as exc:
            raise StateFileError(f"state file: {where}.{key}: {exc}") from None
    return values


_SETTINGS_IN: Final = {f: into for f, (_, into) in PERSISTED.items()}


_SEEN_IN: Final = {**_SETTINGS_IN, "enabled": _bool_in}


class _Decoder:
    """Decodes records; the ``seen`` and ``settings`` objects of a fleet are nearly all alike,
    so each distinct one is decoded once (10,000 clients: 20,000 objects, a handful distinct)."""

    def __init__(self) -> None:
        self._done: dict[tuple[object, ...], dict[str, Any]] = {}

    def record(self, name: str, raw: object) -> _Saved:
        where = f"client {name!r}"
        runtime = _fields(where, raw, _RUNTIME)
        assert isinstance(raw, dict)
        seen = self._settings(f"{where}: seen", raw.get("seen"), _SEEN_IN)
        settings = self._settings(f"{where}: settings", raw.get("settings"), _SETTINGS_IN)
        return _Saved(seen, settings, runtime)

    def _settings(
        self, where: str, raw: object, decoders: Mapping[str, Callable[[object], object]]
    ) -> dict[str, Any]:
        if not isinstance(raw, dict):
            return _fields(where, raw, decoders)  # the error
        try:
            # The types too: JSON's true == 1 == 1.0 in Python, but only one of them is valid.
            key = (id(decoders), tuple(raw.items()), tuple(map(type, raw.values())))
            return self._done[key]
        except TypeError:  # a value that is no JSON scalar (an error, or a key to ignore)
            return _fields(where, raw, decoders)
        except KeyError:
            decoded = self._done[key] = _fields(where, raw, decoders)
            return decoded


def _check_top(data: object) -> Mapping[str, object]:
    if not isinstance(data, dict):
        raise StateFileError("state file: expected a JSON object")
    version = data.get("version")
    if version != VERSION or isinstance(version, bool):
        raise StateFileError(f"state file: unsupported version {version!r}")
    clients = data.get("clients")
    if not isinstance(clients, dict):
        raise StateFileError("state file: 'clients' is not an object")
    return clients


def _restore_one(
    config: ClientConfig, saved: _Saved, now: datetime
) -> tuple[ClientState, list[Effect]]:
    seen_enabled = saved.seen["enabled"]
    state = ClientState(config=_merged(config, saved), file_config=config, **saved.runtime)
    out: list[Effect] = []
    if config.enabled != seen_enabled:  # the file's word on enabled changed: it wins
        state.enabled = config.enabled
        state.expires = None
        if config.enabled:
            state.last_enabled = now
    elif state.enabled and (state.expires is None or now >= state.expires):
        if state.last_checker_status == 0 and state.last_checked_ok is not None:
            state.expires = add_time(now, state.config.timeout)
        else:
            state.enabled = False
            out.append(
                Log(
                    logging.WARNING,
                    "Disabling client %s: it expired while the server was down and its last"
                    " checker did not succeed",
                    (state.name,),
                )
            )
    if not state.enabled:
        state.expires = None
    return state, out


def _merged(config: ClientConfig, saved: _Saved) -> ClientConfig:
    """``merge_config`` of the saved ``seen`` and ``settings`` over ``config``, without
    building either: only a setting the file left as seen and the runtime changed differs."""
    kept = {
        field: value
        for field, value in saved.settings.items()
        if value != (written := getattr(config, field)) and saved.seen[field] == written
    }
    return dataclasses.replace(config, **kept) if kept else config


def restored_states(
    configs: Iterable[ClientConfig], data: object, now: datetime
) -> tuple[list[ClientState], list[Effect]]:
    """A state for each of ``configs`` (in order) with the runtime state of ``data`` (a
    ``dump`` result) applied, not yet started; saved records of other names are dropped.

    Raises:
        StateFileError: ``data`` is not a version-1 state of the expected shape.
    """
    clients = _check_top(data)
    decoder = _Decoder()
    records = {name: decoder.record(name, raw) for name, raw in clients.items()}
    states: list[ClientState] = []
    out: list[Effect] = []
    for config in configs:
        rec = records.get(config.name.value)
        if rec is None:
            states.append(ClientState.fresh(config, now))
            continue
        state, effects = _restore_one(config, rec, now)
        states.append(state)
        out += effects
    return states, out


def restore_into(registry: Registry, data: object, now: datetime) -> list[Effect]:
    """Apply the runtime state of ``data`` (a ``dump`` result) to a fresh ``registry``.

    The registry's clients (from clients.conf) are kept; saved records of other names are
    dropped. Nothing changes when ``data`` is malformed.

    Raises:
        StateFileError: ``data`` is not a version-1 state of the expected shape.
    """
    configs = [current.file_config for current in registry.states()]
    states, out = restored_states(configs, data, now)
    registry.replace_states(states, now)
    return out


def restore(
    configs: Iterable[ClientConfig], data: object, now: datetime, rng: random.Random
) -> tuple[Registry, list[Effect]]:
    """A registry of ``configs`` with the runtime state of ``data`` (see ``restore_into``)."""
    registry = Registry(configs, now, rng)
    return registry, restore_into(registry, data, now)
