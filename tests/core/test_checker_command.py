from __future__ import annotations

import pytest

from mandos.core.checker_command import expand_runtime
from mandos.core.errors import CheckerError


def test_host_is_shell_quoted() -> None:
    assert expand_runtime("fping -q -- %(host)s", {"host": "a b;rm"}) == "fping -q -- 'a b;rm'"


def test_literal_percent_survives() -> None:
    assert expand_runtime("echo 100%% %(name)s", {"name": "x"}) == "echo 100% x"


@pytest.mark.parametrize("template", ["%(nosuch)s", "%(host)", "%(host)d"])
def test_bad_format_is_a_checker_error(template: str) -> None:
    with pytest.raises(CheckerError, match="Could not format string"):
        expand_runtime(template, {"host": "h"})
