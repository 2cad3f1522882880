"""The state saver spends at most SAVE_MAX_SHARE of the time saving, and waits at least 1 s."""

from __future__ import annotations

import pytest

from mandos.server.app import SAVE_MAX_SHARE, SAVE_MIN_INTERVAL_SECONDS, save_pause


def test_cheap_saves_wait_the_minimum_interval() -> None:
    assert save_pause(0.001) == SAVE_MIN_INTERVAL_SECONDS


def test_a_costly_save_waits_long_enough_to_stay_under_its_share() -> None:
    spent = 0.3  # 10,000 clients
    pause = save_pause(spent)
    assert spent / pause == pytest.approx(SAVE_MAX_SHARE)
