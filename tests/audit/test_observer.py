"""The server's observer in-process: traces, effects and causes become records and counts."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mandos.adapters.audit_log import AuditError, AuditLog
from mandos.adapters.cause import Cause, caused_by
from mandos.core.config import ClientConfig
from mandos.core.effects import (
    Effect,
    Log,
    PropertiesChanged,
    SaveState,
    Signal,
    StopChecker,
    WakeApprovalWaiters,
)
from mandos.core.registry import Refuse, Registry, SendSecret
from mandos.core.values import ClientName, KeyId, Secret
from mandos.server.observer import CHECKER_TIMEOUT_MESSAGE, Observer, _unremarkable
from tests.audit.test_server_audit import records

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
KEY = KeyId.parse("AB" * 32)


def make(tmp_path: Path, **kwargs: object) -> tuple[Observer, Registry]:
    config = ClientConfig(ClientName("web1"), Secret(b"s"), key_id=KEY)
    registry = Registry([config], NOW, random.Random(1))
    audit = AuditLog(tmp_path / "audit.jsonl", lambda: NOW)
    return Observer(lambda: NOW, lambda: registry, audit=audit, **kwargs), registry  # type: ignore[arg-type]


async def flush(observer: Observer) -> None:
    assert observer.audit is not None
    task = asyncio.create_task(observer.audit.run())
    await observer.record_durably("probe", {})
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_unknown_keys_are_remembered(tmp_path: Path) -> None:
    observer, _ = make(tmp_path)
    for _ in range(3):
        trace = observer.trace("192.0.2.7")
        trace.identified(KeyId.parse("CD" * 32))
        trace.decided(Refuse(None, "Client not found"))
        trace.finish()
    (stranger,) = observer.unknown_keys()
    assert (stranger.key_id, stranger.address, stranger.count) == ("CD" * 32, "192.0.2.7", 3)


def test_metrics_count_outcomes_and_checkers(tmp_path: Path) -> None:
    observer, _ = make(tmp_path, metrics_address="127.0.0.1:9")
    sent = observer.trace("192.0.2.1")
    sent.identified(KEY)
    sent.decided(SendSecret("web1", Secret(b"s")))
    sent.sent()
    sent.finish()
    early = observer.trace("192.0.2.2")
    early.failed("timed_out")
    early.finish()
    observer.effect(Signal("web1", "CheckerStarted", ("true",)))
    observer.effect(Signal("web1", "CheckerCompleted", (0, 0, "true")))
    observer.effect(Signal("web1", "CheckerStarted", ("false",)))
    observer.effect(Log(logging.WARNING, CHECKER_TIMEOUT_MESSAGE, ("web1",)))
    observer.effect(StopChecker("web1"))
    assert observer.metrics is not None
    text = observer.metrics.render().decode()
    assert 'mandos_requests_total{outcome="secret_sent"} 1.0' in text
    assert 'mandos_requests_total{outcome="timed_out"} 1.0' in text
    assert 'mandos_checker_runs_total{result="success"} 1.0' in text
    assert 'mandos_checker_runs_total{result="timeout"} 1.0' in text
    assert "mandos_connections_open 0.0" in text
    assert 'mandos_clients{state="enabled"} 1.0' in text


def test_causes_reach_the_records(tmp_path: Path) -> None:
    observer, registry = make(tmp_path)
    with caused_by(Cause("dbus", 0, "Disable")):
        for effect in registry.disable("web1", NOW):
            observer.effect(effect)
    for effect in registry.enable("web1", NOW):
        observer.effect(effect)
    later = NOW + timedelta(days=1)
    for effect in registry.tick(later):  # the timeout disables it
        observer.effect(effect)
    asyncio.run(flush(observer))
    found = [r for r in records(tmp_path / "audit.jsonl") if str(r["event"]).startswith("client_")]
    assert [(r["event"], r.get("cause")) for r in found] == [
        ("client_disabled", "dbus"),
        ("client_enabled", "server"),
        ("client_disabled", "timeout"),
    ]
    assert found[0]["uid"] == 0
    assert found[2]["checker"] == "fping -q -- %(host)s"
    assert "by its timeout" in " ".join(observer.explain("web1").reasons)


def test_lost_audit_records_are_counted(tmp_path: Path) -> None:
    observer, _ = make(tmp_path, metrics_address="127.0.0.1:9")
    (tmp_path / "audit.jsonl").mkdir()

    async def run() -> None:
        assert observer.audit is not None
        task = asyncio.create_task(observer.audit.run())
        with pytest.raises(AuditError):
            await observer.record_durably("secret_sent", {"client": "web1"})
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    assert observer.metrics is not None
    text = observer.metrics.render().decode()
    assert "mandos_audit_records_lost_total 2.0" in text  # log_opened and secret_sent


def test_a_secret_recorded_but_not_delivered_says_so(tmp_path: Path) -> None:
    observer, _ = make(tmp_path)

    async def run() -> None:
        assert observer.audit is not None
        task = asyncio.create_task(observer.audit.run())
        trace = observer.trace("192.0.2.3")
        trace.identified(KEY)
        trace.decided(SendSecret("web1", Secret(b"s")))
        await trace.before_secret()
        trace.failed("timed_out")  # the peer never read it
        trace.finish()
        await observer.record_durably("probe", {})
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    events = [(r["event"], r.get("outcome")) for r in records(tmp_path / "audit.jsonl")]
    assert events[-3:] == [
        ("secret_sent", None),
        ("secret_not_delivered", "timed_out"),
        ("probe", None),
    ]


@pytest.mark.parametrize(
    "effect",
    [
        PropertiesChanged("c", {"Enabled": False, "Expires": None}),
        Signal(None, "ClientAdded", ("c",)),
        Signal(None, "ClientRemoved", ("c",)),
        Signal("c", "CheckerStarted", ("true",)),
        Signal("c", "CheckerCompleted", (0, 0, "true")),
        Log(logging.WARNING, CHECKER_TIMEOUT_MESSAGE, ("c",)),
        StopChecker("c"),
        WakeApprovalWaiters("c"),
    ],
)
def test_what_the_observer_looks_at_is_never_let_by(effect: Effect) -> None:
    assert not _unremarkable(effect)


@pytest.mark.parametrize(
    "effect",
    [
        SaveState(),
        Log(logging.INFO, "Sending secret to %s", ("c",)),
        Signal("c", "GotSecret"),
        PropertiesChanged("c", {"Expires": None, "LastCheckedOK": None}),
    ],
)
def test_a_served_requests_effects_are_let_by_cheaply(effect: Effect) -> None:
    assert _unremarkable(effect)
