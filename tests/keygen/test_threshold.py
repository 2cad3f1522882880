"""mandos-keygen --threshold K --shares N --output-dir DIR: share files that combine again."""

from __future__ import annotations

import base64
import configparser
import itertools
import stat
from pathlib import Path

import pytest

from mandos.adapters import openpgp, slip39
from mandos.core import shares
from mandos.core.values import Secret
from mandos.keygen import main as keygen

ED = ["--type", "ed25519", "--subtype", "cv25519"]
PASSWORD = b"threshold pass \x00\xff word"


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    assert keygen.main(["--dir", str(directory), "--name", "client1", *ED]) == 0
    return directory


def _split(keydir: Path, tmp_path: Path, *extra: str) -> tuple[int, Path]:
    passfile = tmp_path / "pw"
    passfile.write_bytes(PASSWORD)
    out = tmp_path / "out"
    argv = ["-d", str(keydir), "-F", str(passfile), "-S", "-n", "c1",
            "--threshold", "2", "--shares", "3", "--output-dir", str(out), *extra]  # fmt: skip
    return keygen.main(argv), out


def _payload(path: Path, keydir: Path) -> bytes:
    parser = configparser.ConfigParser()
    parser.read_string(path.read_text())
    message = base64.b64decode(parser["c1"]["secret"])
    pub, sec = (keydir / "pubkey.txt").read_bytes(), (keydir / "seckey.txt").read_bytes()
    return openpgp.decrypt(message, sec, pub)


def test_share_files_any_two_rebuild_the_password(
    keydir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _split(keydir, tmp_path)
    printed, err = capsys.readouterr()
    assert (code, err) == (0, "")
    paths = [out / f"c1.share-{i}.conf" for i in (1, 2, 3)]
    assert printed.split() == [str(p) for p in paths]
    for i, path in enumerate(paths, 1):
        text = path.read_text()
        assert text.startswith(f"# share {i} of 3, threshold 2\n[c1]\nhost = c1\n")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    parsed = [shares.parse(_payload(p, keydir)) for p in paths]
    for share in parsed:
        slip39.verify(share)
    assert len({s.set_id for s in parsed}) == 1
    for pair in itertools.combinations(parsed, 2):
        assert shares.combine(list(pair), slip39.recover) == Secret(PASSWORD)


def test_refuses_to_overwrite_then_force_keeps_backups(
    keydir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _split(keydir, tmp_path)[0] == 0
    first = (tmp_path / "out" / "c1.share-1.conf").read_text()
    code, out = _split(keydir, tmp_path)
    assert code != 0
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (out / "c1.share-1.conf").read_text() == first
    assert _split(keydir, tmp_path, "--force")[0] == 0
    assert (out / "c1.share-1.conf.~1~").read_text() == first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threshold", "2", "--shares", "3"], "go together"),
        (["--threshold", "1", "--shares", "3", "--output-dir", "x"], "threshold"),
        (["--threshold", "4", "--shares", "3", "--output-dir", "x"], "threshold"),
        (["--threshold", "2", "--shares", "17", "--output-dir", "x"], "threshold"),
    ],
)
def test_bad_options(
    keydir: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = keygen.main(["-d", str(keydir), "-F", "/dev/null", "-S", *args])
    err = capsys.readouterr().err
    assert code == 64
    assert message in err
    assert err.count("\n") == 1


def test_threshold_needs_a_password(keydir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["-d", str(keydir), "--threshold", "2", "--shares", "2", "--output-dir", "x"]
    assert keygen.main(argv) == 64
    assert "needs --password or --passfile" in capsys.readouterr().err
