"""adapters/lazylog.py: loggers that import logging only when a record has somewhere to go."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from mandos.adapters import lazylog


def test_records_pass_through_with_the_callers_origin(caplog: pytest.LogCaptureFixture) -> None:
    log = lazylog.get("mandos.test")
    caplog.set_level(logging.DEBUG, logger="mandos.test")
    log.debug("d %d", 1)
    log.info("i %s", "x")
    log.warning("w")
    log.error("e")
    try:
        int("boom")
    except ValueError:
        log.critical("c", exc_info=True)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "d 1"),
        (logging.INFO, "i x"),
        (logging.WARNING, "w"),
        (logging.ERROR, "e"),
        (logging.CRITICAL, "c"),
    ]
    assert {r.name for r in caplog.records} == {"mandos.test"}
    assert {r.funcName for r in caplog.records} == {
        "test_records_pass_through_with_the_callers_origin"
    }
    assert caplog.records[-1].exc_info is not None


def test_deferring_with_logging_imported_sets_up_at_once() -> None:
    ran: list[int] = []
    lazylog.defer_setup(lambda: ran.append(1), lazylog.WARNING)
    assert ran == [1]
    assert lazylog._setup is None
    assert lazylog._floor == 0


_PROBE = """
import sys
from mandos.adapters import lazylog
order = []
def setup():
    import logging
    order.append("setup")
    logging.basicConfig(format="P: %(message)s", level=logging.WARNING)
lazylog.defer_setup(setup, lazylog.WARNING)
log = lazylog.get("mandos.probe")
log.debug("dropped")
log.info("dropped too")
print("logging" in sys.modules, order)
log.warning("first %s", "warning")
log.warning("second")
log.debug("below the level logging now has")
print("logging" in sys.modules, order)
"""


def test_deferred_set_up_runs_at_the_first_record_at_the_floor() -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout == "False []\nTrue ['setup']\n"
    assert done.stderr == "P: first warning\nP: second\n"
