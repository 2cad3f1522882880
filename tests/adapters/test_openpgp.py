"""OpenPGP adapter: real pysequoia and real gpg, including the traps in DECISIONS.md.

Keys are made by gpg in private homes (mandos.adapters.openpgp.gpg_home kills each agent):
a key created "in the future" (the initramfs clock says 1970) and a key with two encryption
subkeys (pysequoia's decryptor picks only one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mandos.adapters import openpgp
from mandos.core.errors import DecryptError, KeyFileError

FUTURE = "20300101T000000"
_EDDSA_PARAMS = """%no-protection
Key-Type: EDDSA
Key-Curve: ed25519
Key-Usage: sign,auth
Subkey-Type: ECDH
Subkey-Curve: cv25519
Subkey-Usage: encrypt
Name-Real: {name}
Expire-Date: 0
%commit
"""


@dataclass(frozen=True)
class Keys:
    """An armoured key pair, and gpg --with-colons sub key IDs in key order."""

    pub: bytes
    sec: bytes
    subkeys: tuple[str, ...]


def gpg(home: Path, *args: str, stdin: bytes = b"", faked: str | None = None) -> bytes:
    """Run gpg in a test home; fail the test with gpg's stderr if it fails."""
    time_opts = ["--faked-system-time", f"{faked}!"] if faked else []
    done = subprocess.run(
        ["gpg", "--batch", "--no-tty", "--quiet", "--homedir", str(home), *time_opts, *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def _subkeys(home: Path) -> tuple[str, ...]:
    out = gpg(home, "--with-colons", "--list-keys").decode()
    return tuple(ln.split(":")[4] for ln in out.splitlines() if ln.startswith("sub:"))


def _export(home: Path, faked: str | None = None) -> Keys:
    return Keys(
        gpg(home, "--armor", "--export", faked=faked),
        gpg(home, "--armor", "--export-secret-keys", faked=faked),
        _subkeys(home) if faked is None else (),
    )


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """A gpg home shared by a module's key-making fixtures; its agent is killed at the end."""
    with openpgp.gpg_home(prefix="test-openpgp-") as path:
        yield path


@pytest.fixture(scope="module")
def plain_keys() -> Iterator[Keys]:
    """An ordinary Ed25519/Curve25519 key, as mandos-keygen makes with -t ed25519 -s cv25519."""
    with openpgp.gpg_home(prefix="test-openpgp-") as h:
        gpg(h, "--gen-key", stdin=_EDDSA_PARAMS.format(name="plain").encode())
        yield _export(h)


@pytest.fixture(scope="module")
def future_keys() -> Iterator[tuple[Keys, bytes]]:
    """A key created in 2030 and a message to it (both made with gpg's faked clock)."""
    with openpgp.gpg_home(prefix="test-openpgp-") as h:
        gpg(h, "--gen-key", stdin=_EDDSA_PARAMS.format(name="future").encode(), faked=FUTURE)
        keys = _export(h, faked=FUTURE)
        message = gpg(
            h, "--trust-model", "always", "--recipient", "future", "--encrypt",
            stdin=b"from the future", faked="20300102T000000",
        )  # fmt: skip
        yield keys, message


@pytest.fixture(scope="module")
def two_subkey_keys() -> Iterator[tuple[Keys, list[bytes]]]:
    """A key with two encryption subkeys, and one message to each subkey alone."""
    with openpgp.gpg_home(prefix="test-openpgp-") as h:
        gpg(h, "--passphrase", "", "--quick-gen-key", "two <two@example>", "ed25519", "sign", "0")
        fpr = next(
            ln.split(":")[9]
            for ln in gpg(h, "--with-colons", "--list-keys").decode().splitlines()
            if ln.startswith("fpr:")
        )
        for _ in range(2):
            gpg(h, "--passphrase", "", "--quick-add-key", fpr, "cv25519", "encr", "0")
        keys = _export(h)
        assert len(keys.subkeys) == 2
        messages = [
            gpg(h, "--trust-model", "always", "--recipient", f"{sub}!", "--encrypt",
                stdin=f"to subkey {n}".encode())
            for n, sub in enumerate(keys.subkeys)
        ]  # fmt: skip
        yield keys, messages


# --------------------------------------------------------------------------- decrypt


def test_roundtrip_in_process(plain_keys: Keys) -> None:
    message = openpgp.encrypt(b"hunter2", plain_keys.pub, seckey_armored=plain_keys.sec)
    assert message[:1] != b"-"  # binary, not armour
    assert openpgp.decrypt(message, plain_keys.sec, plain_keys.pub) == b"hunter2"


def test_decrypts_gpg_encrypt_sign(plain_keys: Keys, home: Path) -> None:
    gpg(home, "--import", stdin=plain_keys.sec)
    message = gpg(
        home, "--trust-model", "always", "--recipient", "plain", "--local-user", "plain",
        "--encrypt", "--sign", stdin=b"\x00binary\xffsecret",
    )  # fmt: skip
    assert openpgp.decrypt(message, plain_keys.sec) == b"\x00binary\xffsecret"
    assert openpgp.gpg_decrypt(message, plain_keys.sec, plain_keys.pub) == b"\x00binary\xffsecret"


def test_decrypts_armoured_message(plain_keys: Keys, home: Path) -> None:
    gpg(home, "--import", stdin=plain_keys.pub)
    message = gpg(
        home, "--trust-model", "always", "--recipient", "plain", "--armor", "--encrypt",
        stdin=b"armoured",
    )  # fmt: skip
    assert openpgp.decrypt(message, plain_keys.sec) == b"armoured"


def test_key_created_after_the_clock(future_keys: tuple[Keys, bytes]) -> None:
    keys, message = future_keys
    # pysequoia alone refuses (DECISIONS.md); the gpg fallback must not.
    with pytest.raises(openpgp._SequoiaFailed):
        openpgp._sequoia_decrypt(message, keys.sec)
    assert openpgp.decrypt(message, keys.sec, keys.pub) == b"from the future"
    assert openpgp.decrypt(message, keys.sec) == b"from the future"


def test_second_encryption_subkey(two_subkey_keys: tuple[Keys, list[bytes]]) -> None:
    keys, messages = two_subkey_keys
    for n, message in enumerate(messages):
        expected = f"to subkey {n}".encode()
        assert openpgp._sequoia_decrypt(message, keys.sec) == expected  # in-process
        assert openpgp.decrypt(message, keys.sec, keys.pub) == expected


def test_gpg_fallback_leaves_nothing_behind(
    future_keys: tuple[Keys, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, message = future_keys
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert openpgp.decrypt(message, keys.sec) == b"from the future"
    assert list(tmp_path.iterdir()) == []
    agents = subprocess.run(
        ["ps", "-eo", "args="], capture_output=True, text=True, check=True
    ).stdout
    assert str(tmp_path) not in agents


_AS_PASSWORD_AGENT_RUNS_IT = """
import os, sys
from pathlib import Path
os.setgroups([])
os.setresgid(65534, -1, -1)
os.setresuid(65534, -1, -1)  # real ids nobody, effective root: how password-agent starts it
from mandos.adapters import openpgp
d = Path(sys.argv[1])
sys.stdout.buffer.write(openpgp.gpg_decrypt((d / "msg").read_bytes(), (d / "sec").read_bytes()))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to take real ids 65534")
def test_gpg_fallback_with_real_ids_not_root(
    future_keys: tuple[Keys, bytes], tmp_path: Path
) -> None:
    """Real ids 65534 under an effective root: gpg would drop to 65534 in a home it cannot
    write ("No public key"); the home is made the real user's (found booting dracut's image)."""
    keys, message = future_keys
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sec").write_bytes(keys.sec)
    done = subprocess.run(
        [sys.executable, "-c", _AS_PASSWORD_AGENT_RUNS_IT, str(tmp_path)],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.stderr == b""
    assert done.stdout == b"from the future"


# --------------------------------------------------------------------------- errors


def _assert_clean(exc: DecryptError, *secrets: bytes) -> None:
    text = str(exc)
    assert "\n" not in text
    assert text
    for secret in secrets:
        for line in secret.decode(errors="replace").splitlines():
            if len(line) > 20:
                assert line not in text


@pytest.mark.parametrize(
    "message", [b"", b"not openpgp at all", b"\x85\x01\x0c" + b"\x00" * 40], ids=repr
)
def test_garbage_message(plain_keys: Keys, message: bytes) -> None:
    with pytest.raises(DecryptError) as info:
        openpgp.decrypt(message, plain_keys.sec, plain_keys.pub)
    _assert_clean(info.value, plain_keys.sec)


def test_wrong_key(plain_keys: Keys, two_subkey_keys: tuple[Keys, list[bytes]]) -> None:
    other, messages = two_subkey_keys
    with pytest.raises(DecryptError) as info:
        openpgp.decrypt(messages[0], plain_keys.sec, plain_keys.pub)
    _assert_clean(info.value, plain_keys.sec, other.sec)


def test_garbage_key(two_subkey_keys: tuple[Keys, list[bytes]]) -> None:
    _, messages = two_subkey_keys
    with pytest.raises(DecryptError) as info:
        openpgp.decrypt(messages[0], b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxx\n")
    _assert_clean(info.value)


# --------------------------------------------------------------------------- encrypt, inspect


def test_gpg_encrypt_is_signed(plain_keys: Keys, home: Path) -> None:
    message = openpgp.gpg_encrypt(b"signed", plain_keys.pub, seckey_armored=plain_keys.sec)
    assert openpgp.decrypt(message, plain_keys.sec) == b"signed"
    gpg(home, "--import", stdin=plain_keys.sec)
    status = gpg(home, "--status-fd", "1", "--trust-model", "always", "--decrypt", stdin=message)
    assert b"[GNUPG:] GOODSIG" in status


def test_sequoia_encrypt_is_signed_and_gpg_reads_it(plain_keys: Keys, home: Path) -> None:
    message = openpgp.encrypt(b"for gpg", plain_keys.pub, seckey_armored=plain_keys.sec)
    gpg(home, "--import", stdin=plain_keys.sec)
    status = gpg(home, "--status-fd", "1", "--trust-model", "always", "--decrypt", stdin=message)
    assert b"[GNUPG:] GOODSIG" in status
    assert status.endswith(b"for gpg") or b"for gpg" in status


def test_unsigned_encrypt(plain_keys: Keys) -> None:
    message = openpgp.encrypt(b"", plain_keys.pub)
    assert openpgp.decrypt(message, plain_keys.sec) == b""


def test_fingerprint_both_ways(plain_keys: Keys, home: Path) -> None:
    expected = next(
        ln.split(":")[9]
        for ln in gpg(home, "--with-colons", "--import-options", "show-only", "--import",
                      stdin=plain_keys.pub).decode().splitlines()
        if ln.startswith("fpr:")
    )  # fmt: skip
    assert str(openpgp.fingerprint(plain_keys.pub)) == expected
    assert str(openpgp.fingerprint(plain_keys.sec)) == expected
    assert str(openpgp.fingerprint(plain_keys.pub, home=home)) == expected


def test_fingerprint_of_garbage(home: Path) -> None:
    with pytest.raises(KeyFileError):
        openpgp.fingerprint(b"nonsense")
    with pytest.raises(KeyFileError):
        openpgp.fingerprint(b"nonsense", home=home)


def test_bad_public_key_is_not_fatal(future_keys: tuple[Keys, bytes]) -> None:
    keys, message = future_keys
    assert openpgp.gpg_decrypt(message, keys.sec, b"garbage") == b"from the future"


def _logging_wrappers(tmp_path: Path) -> tuple[Path, Path]:
    """A directory of gpg and gpgconf wrappers that log each run to a file, then the real one."""
    bindir, log = tmp_path / "bin", tmp_path / "runs.log"
    bindir.mkdir()
    for name in ("gpg", "gpgconf"):
        real = shutil.which(name)
        assert real is not None
        wrapper = bindir / name
        wrapper.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\nexec {real} "$@"\n')
        wrapper.chmod(0o755)
    return bindir, log


def test_gpg_fallback_runs_as_few_programs_as_it_can(
    future_keys: tuple[Keys, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each program is seconds in a TCG guest: both keys in one import, then the decrypt, and
    gpgconf --remove-socketdir only where gpg can have made a socket directory outside the
    home (not in an initramfs, which has no /run/user/UID)."""
    keys, message = future_keys
    bindir, log = _logging_wrappers(tmp_path)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    assert openpgp.gpg_decrypt(message, keys.sec, keys.pub) == b"from the future"
    runs = log.read_text().splitlines()
    assert [r.split()[0] for r in runs].count("gpg") == 2, runs
    assert sum("--kill all" in r for r in runs) == 1, runs
    removes = sum("--remove-socketdir" in r for r in runs)
    assert removes == (1 if openpgp._socket_base(os.getuid()) else 0), runs


def test_a_public_key_gpg_rejects_is_imported_alone_then_skipped(
    future_keys: tuple[Keys, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Binary junk before the armoured secret key fails the joint import: each key is then
    imported alone, the public key's failure ignored (as before the joint import)."""
    keys, message = future_keys
    bindir, log = _logging_wrappers(tmp_path)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    junk = b"\x99\x00\x05junk!"
    assert openpgp.gpg_decrypt(message, keys.sec, junk) == b"from the future"
    imports = [r for r in log.read_text().splitlines() if "--import" in r]
    assert len(imports) == 3, imports


def test_import_leaves_what_only_gpg_needs_unloaded() -> None:
    """The client decrypts with pysequoia: subprocess, shutil and tempfile (~6 ms) and pathlib
    (~0.6 MiB of RSS) wait for gpg."""
    probe = (
        "import sys, mandos.adapters.openpgp\n"
        "print(sorted({'subprocess', 'shutil', 'tempfile', 'pathlib'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout == "[]\n"
