"""mandos-keygen end to end: real gpg, real GnuTLS keys, main(argv) -> exit code."""

from __future__ import annotations

import base64
import configparser
import io
import os
import pty
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mandos.adapters import openpgp
from mandos.adapters.gnutls.keys import public_key_id
from mandos.core.errors import EX_NOINPUT, EX_USAGE, KeyFileError
from mandos.core.values import KeyId
from mandos.keygen import main as keygen
from mandos.keygen import tools

ED = ["--type", "ed25519", "--subtype", "cv25519"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = keygen.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def section_of(text: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read_string(text)
    (name,) = parser.sections()
    return parser[name]


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Ed25519/Curve25519 key directory made by our mandos-keygen, shared by the module."""
    directory = tmp_path_factory.mktemp("keys")
    assert keygen.main(["--dir", str(directory), "--name", "client1", *ED]) == 0
    return directory


@pytest.fixture(autouse=True)
def _quiet_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prompts go to a buffer, never to the developer's terminal."""
    monkeypatch.setattr(keygen, "_prompt_stream", io.StringIO)


def test_files_and_modes(keydir: Path) -> None:
    names = sorted(p.name for p in keydir.iterdir())
    assert names == ["pubkey.txt", "seckey.txt", "tls-privkey.pem", "tls-pubkey.pem"]
    for path in keydir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert (
        (keydir / "pubkey.txt")
        .read_bytes()
        .startswith(
            b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: Mandos client key for client1\n"
        )
    )
    assert b"-----BEGIN PGP PRIVATE KEY BLOCK-----" in (keydir / "seckey.txt").read_bytes()
    assert (keydir / "tls-privkey.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (keydir / "tls-pubkey.pem").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_user_id_and_key_shape(tmp_path: Path) -> None:
    argv = ["-d", str(tmp_path), "-n", "host1", "-c", "my comment", "-e", "a@b.c", "-x", "2y", *ED]
    assert keygen.main(argv) == 0
    seckey = (tmp_path / "seckey.txt").read_bytes()
    assert b"Comment: Mandos client key for host1 (my comment) <a@b.c>" in seckey
    with openpgp.gpg_home() as home:
        listing = subprocess.run(
            ["gpg", "--batch", "--homedir", str(home), "--with-colons", "--show-keys"],
            input=seckey.decode(), capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    records = [ln.split(":") for ln in listing.splitlines()]
    (uid,) = [r[9] for r in records if r[0] == "uid"]
    assert uid == "host1 (my comment) <a@b.c>"
    (sec,) = [r for r in records if r[0] == "sec"]
    (ssb,) = [r for r in records if r[0] == "ssb"]
    assert (sec[3], bool(sec[6])) == ("22", True)  # EdDSA, with an expiry date
    assert "e" not in sec[11][:3]
    assert {"s", "a"} <= set(sec[11][:3])  # sign, auth (and certify, always)
    assert (ssb[3], ssb[11]) == ("18", "e")  # ECDH, encrypt only


def test_refuses_to_overwrite_then_force_keeps_backups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert keygen.main(["-d", str(tmp_path), *ED]) == 0
    old = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    (tmp_path / "pubkey.txt").unlink()  # one file missing still refuses
    code, _, err = run(["-d", str(tmp_path), *ED], capsys)
    assert code == 1
    assert err == "mandos-keygen: refusing to overwrite old key files; use --force\n"
    for _ in range(2):
        assert keygen.main(["-d", str(tmp_path), "--force", *ED]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert "pubkey.txt.~1~" in names
    assert "pubkey.txt.~2~" not in names  # it was missing the first time
    assert {"seckey.txt.~1~", "seckey.txt.~2~", "tls-pubkey.pem.~2~"} <= names
    assert (tmp_path / "seckey.txt.~1~").read_bytes() == old["seckey.txt"]
    assert (tmp_path / "tls-privkey.pem.~1~").read_bytes() == old["tls-privkey.pem"]
    assert (tmp_path / "seckey.txt").read_bytes() != old["seckey.txt"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in tmp_path.iterdir())


def test_passfile_section(keydir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    password = b" pass word\twith blanks \n\x00\xff"
    passfile = tmp_path / "pw"
    passfile.write_bytes(password)
    code, out, err = run(["-d", str(keydir), "-F", str(passfile), "-S", "-n", "c1"], capsys)
    assert (code, err) == (0, "")
    assert out.splitlines()[:2] == ["[c1]", "host = c1"]
    section = section_of(out)
    assert KeyId.parse(section["key_id"]) == public_key_id((keydir / "tls-pubkey.pem").read_bytes())
    pub, sec = (keydir / "pubkey.txt").read_bytes(), (keydir / "seckey.txt").read_bytes()
    assert section["fingerprint"] == str(openpgp.fingerprint(pub))
    message = base64.b64decode(section["secret"])
    assert message[0] & 0x80  # a binary OpenPGP packet
    assert openpgp.decrypt(message, sec, pub) == password  # verbatim
    assert openpgp.gpg_decrypt(message, sec) == password


def test_dev_null_passfile(keydir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["-d", str(keydir), "-F", "/dev/null", "-S"], capsys)
    assert code == 0
    section = section_of(out)
    assert section.name == tools.fqdn()
    sec = (keydir / "seckey.txt").read_bytes()
    assert openpgp.decrypt(base64.b64decode(section["secret"]), sec) == b""


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_password_prompt_strips_blanks(
    keydir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, b"  secret one \t\n\tsecret one\n")
    code, out, _ = run(["-d", str(keydir), "--password", "--no-ssh"], capsys)
    assert code == 0
    sec = (keydir / "seckey.txt").read_bytes()
    assert openpgp.decrypt(base64.b64decode(section_of(out)["secret"]), sec) == b"secret one"


def test_password_mismatch_without_terminal(
    keydir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, b"one\ntwo\n")
    code, out, err = run(["-d", str(keydir), "-p", "-S"], capsys)
    assert (code, out, err) == (1, "", "mandos-keygen: passphrase mismatch\n")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"only once\n", "the passphrase was not repeated (give it twice, one line each)"),
        (b"", "no passphrase given"),
    ],
)
def test_password_not_repeated_says_so(
    keydir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    data: bytes,
    message: str,
) -> None:
    _stdin(monkeypatch, data)
    code, out, err = run(["-d", str(keydir), "-p", "-S"], capsys)
    assert (out, err.splitlines()[-1]) == ("", f"mandos-keygen: {message}")
    assert code != 0


def test_password_mismatch_on_terminal_asks_again() -> None:
    master, slave = pty.openpty()
    try:
        os.write(master, b"one\ntwo\n three\nthree \n")
        prompts = io.StringIO()
        with os.fdopen(os.dup(slave), "rb", buffering=0) as tty:
            assert keygen.read_passphrase(tty, prompts) == b"three"
        assert prompts.getvalue() == (
            "Enter passphrase: \nRepeat passphrase: \nPassphrase mismatch\n"
            "Enter passphrase: \nRepeat passphrase: \n"
        )
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["-d", "/nonexistent/dir"], EX_NOINPUT, "/nonexistent/dir: not a directory"),
        (["-d", "/proc", *ED], 1, "/proc: directory not writable"),
        (["-l", "100"], EX_USAGE, "--length: invalid key length 100 (minimum 512)"),
        (["-L", "big"], EX_USAGE, "--sublength: 'big' is not a number of bits"),
        (["-t", "ELG"], EX_USAGE, "--type: unknown key type 'ELG' (use one of"),
        (["-T", "rsa"], EX_USAGE, "--tls-keytype: unsupported TLS key type 'rsa' (use ed25519)"),
        (["--bogus"], EX_USAGE, "unrecognized arguments: --bogus"),
        (["-n", "a\nb", *ED], EX_USAGE, "--name: control characters are not allowed"),
    ],
)
def test_bad_input(
    argv: list[str], code: int, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "-d" not in argv:
        argv = ["-d", str(tmp_path), *argv]
    got, out, err = run(argv, capsys)
    assert got == code
    assert out == ""
    assert err.startswith(f"mandos-keygen: {message}")
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_password_without_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["-d", str(tmp_path), "-F", "/dev/null"], capsys)
    assert code == KeyFileError.exit_code
    assert err == f"mandos-keygen: {tmp_path}/pubkey.txt: No such file or directory\n"


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for option in ("--dir", "--type", "--length", "--subtype", "--sublength", "--name",
                   "--email", "--comment", "--expire", "--tls-keytype", "--force",
                   "--password", "--passfile", "--no-ssh", "--version"):  # fmt: skip
        assert option in out
    code, out, _ = run(["-v"], capsys)
    assert code == 0
    assert out.startswith("mandos-keygen ")


def test_console_script(keydir: Path) -> None:
    script = Path(sys.executable).parent / "mandos-keygen"
    done = subprocess.run(
        [str(script), "--dir", str(keydir), "--passfile", "/dev/null", "--no-ssh", "-n", "x"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[x]\nhost = x\nkey_id = ")


def test_ssh_checker_lines_when_sshd_answers(
    keydir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --no-ssh the section has checker lines exactly when localhost runs an sshd."""
    host_key = tools.ssh_host_key("localhost")
    code, out, _ = run(["-d", str(keydir), "-F", "/dev/null"], capsys)
    assert code == 0
    section = section_of(out)
    if host_key is None:
        assert "checker" not in section
    else:
        assert section["ssh_fingerprint"] == str(host_key)
        assert section["checker"].startswith(f"ssh-keyscan -t {host_key.key_type} %(host)s")


@pytest.mark.slow
def test_default_rsa_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default: RSA-4096 primary (sign, auth) and RSA-4096 encryption subkey."""
    assert keygen.main(["-d", str(tmp_path), "-n", "rsa"]) == 0
    pub = (tmp_path / "pubkey.txt").read_bytes()
    with openpgp.gpg_home() as home:
        listing = subprocess.run(
            ["gpg", "--batch", "--homedir", str(home), "--with-colons", "--show-keys"],
            input=pub.decode(), capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    keys = [ln.split(":") for ln in listing.splitlines() if ln.startswith(("pub:", "sub:"))]
    assert [(k[0], k[2], k[3]) for k in keys] == [("pub", "4096", "1"), ("sub", "4096", "1")]
    code, out, _ = run(["-d", str(tmp_path), "-F", "/dev/null", "-S"], capsys)
    assert code == 0
    message = base64.b64decode(section_of(out)["secret"])
    assert openpgp.decrypt(message, (tmp_path / "seckey.txt").read_bytes()) == b""
