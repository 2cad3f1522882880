from __future__ import annotations

import pytest
from textual.binding import Binding

from mandos.monitor import main as monitor
from mandos.monitor.app import MonitorApp


def test_help_gives_the_keys_and_the_screen(capsys: pytest.CaptureFixture[str]) -> None:
    assert monitor.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mandos-monitor [--help] [--version]\n")
    assert all(len(line) < 80 for line in out.splitlines())
    for row in ("NAME: DISABLED", "NAME: Approval in H:MM:SS. (d)eny?", "NAME: enabled"):
        assert row in out
    # Every key the program binds is explained, as the help writes it.
    for keys in ("q, Q", "?, F1, Esc", "l, D", "TAB", "w, i", "v ", "Ctrl-L", "k/j", "b/f",
                 "+  enable", "-  disable", "a  approve", "d  deny", "R, _, Ctrl-K",
                 "s  start", "S  stop", "C  count"):  # fmt: skip
        assert keys in out, keys
    bound = {k for b in MonitorApp.BINDINGS if isinstance(b, Binding) for k in b.key.split(",")}
    assert bound >= {
        "q",
        "Q",
        "l",
        "D",
        "w",
        "i",
        "v",
        "plus",
        "minus",
        "a",
        "d",
        "R",
        "s",
        "S",
        "C",
    }


def test_bad_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert monitor.main(["--frob"]) == 2
    err = capsys.readouterr().err
    assert err.endswith("mandos-monitor: error: unrecognized arguments: --frob\n")
