from __future__ import annotations

import os
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


def test_deeply_nested_json_is_set_aside(tmp_path: Path) -> None:
    path = statefile.state_path(tmp_path)
    content = b"[" * 100_000 + b"]" * 100_000
    path.write_bytes(content)
    with pytest.raises(StateFileError, match="is corrupt") as info:
        statefile.load(path)
    assert "\n" not in str(info.value)
    (aside,) = tmp_path.iterdir()
    assert aside.read_bytes() == content


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = statefile.state_path(tmp_path)
    os.mkfifo(path)
    with pytest.raises(StateFileError, match="not a regular file") as info:
        statefile.load(path)
    assert "\n" not in str(info.value)
    assert not path.exists()  # set aside: the next save does not replace it


def test_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    path = statefile.state_path(tmp_path)
    path.symlink_to("/dev/zero")
    with pytest.raises(StateFileError, match="not a regular file"):
        statefile.load(path)
    (aside,) = tmp_path.iterdir()
    assert aside.is_symlink()


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = statefile.state_path(tmp_path)
    with path.open("wb") as f:
        f.truncate(statefile.MAX_STATE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(StateFileError, match="larger than"):
        statefile.load(path)
    (aside,) = tmp_path.iterdir()
    assert aside.name.startswith("clients.json.bad-")


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    path = statefile.state_path(tmp_path)
    statefile.save(path, {"version": 1, "clients": {}})
    for n in range(3):
        (tmp_path / f".clients-{n}abc.tmp").write_bytes(b"{")
    (tmp_path / "unrelated.tmp").write_bytes(b"")
    assert statefile.remove_stale_temp_files(tmp_path) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clients.json", "unrelated.tmp"]


def test_reject_sets_aside_and_names_the_problem(tmp_path: Path) -> None:
    path = statefile.state_path(tmp_path)
    path.write_text('{"version": 2, "clients": {}}')
    error = statefile.reject(path, "unsupported version 2")
    assert "unsupported version 2" in str(error)
    assert "moved to" in str(error)
    (aside,) = tmp_path.iterdir()
    assert aside.read_text() == '{"version": 2, "clients": {}}'
