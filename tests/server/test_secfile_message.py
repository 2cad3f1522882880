"""A secfile that cannot be read is reported once, by the parser, with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mandos.core.errors import ConfigError
from mandos.server.main import clients_loader


def test_missing_secfile_is_named_once(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    (tmp_path / "clients.conf").write_text(f"[c]\nkey_id = {'A' * 64}\nsecfile = {missing}\n")
    with pytest.raises(ConfigError) as caught:
        clients_loader(str(tmp_path))
    message = str(caught.value)
    assert message == f"clients.conf:3: secfile: cannot read '{missing}': No such file or directory"
    assert message.count("No such file") == 1
