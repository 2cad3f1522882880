"""Log lines: the text logging.Formatter would make, made at less cost per record."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mandos.core.config import ServerConfig
from mandos.server.logsetup import LineFormatter, configure_logging

FORMAT = "%(asctime)s Mandos [%(process)d]: %(levelname)s: %(message)s"


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("mandos", logging.INFO, "", 0, "Sending secret to %s", ("c1",), None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


@given(st.lists(st.floats(min_value=0, max_value=4e9), min_size=1, max_size=20))
def test_lines_are_logging_formatters(times: list[float]) -> None:
    ours, stock = LineFormatter(FORMAT), logging.Formatter(FORMAT)
    for created in sorted(times) + sorted(times):  # the same second again, and back in time
        assert ours.format(_record(created)) == stock.format(_record(created))


def test_an_explicit_date_format_is_honoured() -> None:
    record = _record(1e9)
    assert LineFormatter(FORMAT).formatTime(record, "%Y") == logging.Formatter().formatTime(
        record, "%Y"
    )


@pytest.fixture
def restored_logging() -> Iterator[None]:
    mandos = logging.getLogger("mandos")
    saved = logging._srcfile, logging.logThreads, logging.logMultiprocessing
    level, propagate, handlers = mandos.level, mandos.propagate, list(mandos.handlers)
    try:
        yield
    finally:
        logging._srcfile, logging.logThreads, logging.logMultiprocessing = saved
        for handler in list(mandos.handlers):
            mandos.removeHandler(handler)
            handler.close()
        for handler in handlers:
            mandos.addHandler(handler)
        mandos.setLevel(level)
        mandos.propagate = propagate


@pytest.mark.usefixtures("restored_logging")
def test_records_skip_what_no_line_shows(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(ServerConfig(), to_syslog=False)
    assert logging._srcfile is None
    assert not logging.logThreads
    assert not logging.logMultiprocessing
    logging.getLogger("mandos").info("Sending secret to %s", "c1")
    line = capsys.readouterr().err
    assert line.endswith(f" Mandos [{os.getpid()}]: INFO: Sending secret to c1\n"), line
