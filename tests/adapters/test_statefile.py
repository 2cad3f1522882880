from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mandos.adapters import statefile
from mandos.core.errors import StateFileError


def test_round_trip_and_mode(tmp_path: Path) -> None:
    path = statefile.state_path(tmp_path)
    statefile.save(path, {"version": 1, "clients": {}})
    assert statefile.load(path) == {"version": 1, "clients": {}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [statefile.STATE_FILE_NAME]


def test_missing_file_is_none(tmp_path: Path) -> None:
    assert statefile.load(tmp_path / "nope.json") is None


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe", b""])
def test_corrupt_file_is_set_aside_not_lost(tmp_path: Path, content: bytes) -> None:
    path = statefile.state_path(tmp_path)
    path.write_bytes(content)
    with pytest.raises(StateFileError, match="is corrupt") as info:
        statefile.load(path)
    assert "\n" not in str(info.value)
    assert not path.exists()
    (aside,) = tmp_path.iterdir()
    assert aside.name.startswith("clients.json.bad-")
    assert aside.read_bytes() == content


def test_unwritable_directory_is_a_state_file_error(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match="cannot write state"):
        statefile.save(tmp_path / "missing" / "clients.json", {})


def test_replace_keeps_old_file_until_rename(tmp_path: Path) -> None:
    path = statefile.state_path(tmp_path)
    statefile.save(path, {"n": 1})
    inode = path.stat().st_ino
    statefile.save(path, {"n": 2})
    assert path.stat().st_ino != inode  # a new file was renamed over the old one
    assert statefile.load(path) == {"n": 2}
    assert [p.name for p in tmp_path.iterdir()] == [statefile.STATE_FILE_NAME]
