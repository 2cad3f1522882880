"""The outside tools mandos-keygen drives: gpg (OpenPGP keys), GnuTLS (TLS key), ssh-keyscan.

gpg always runs with a private throw-away home (mandos.adapters.openpgp.gpg_home), so the
administrator's keyring is never read or changed.  Errors are MandosError with one line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Final

from mandos.adapters import openpgp
from mandos.adapters.gnutls import keys as tls_keys
from mandos.core.errors import KeyFileError, KeyGenError
from mandos.core.values import KeyId
from mandos.keygen import render

#: What the reference asks ssh-keyscan for, in order.
SSH_KEY_TYPES: Final = ("ecdsa-sha2-nistp256", "ed25519", "rsa")
_KEYSCAN_TIMEOUT: Final = 10


def generate_openpgp_key(spec: render.KeySpec) -> tuple[bytes, bytes]:
    """A new key pair as (pubkey.txt, seckey.txt) ASCII armour, made by gpg --gen-key."""
    params = render.gpg_parameters(spec).encode("utf-8")
    comment = render.armor_comment(spec)
    export = ["--armor", "--export-options", "export-minimal", "--comment", comment]
    with openpgp.gpg_home(prefix="mandos-keygen-") as home:

        def run(args: list[str], stdin: bytes, what: str) -> bytes:
            return openpgp.run_gpg(home, args, stdin, what=what, error=KeyGenError)

        run(["--gen-key"], params, "cannot generate the OpenPGP key")
        pub = run([*export, "--export"], b"", "cannot export the OpenPGP key")
        sec = run([*export, "--export-secret-keys"], b"", "cannot export the OpenPGP key")
    if b"PGP PUBLIC KEY BLOCK" not in pub or b"PGP PRIVATE KEY BLOCK" not in sec:
        raise KeyGenError("gpg made no OpenPGP key")
    return pub, sec


def generate_tls_key(key_type: str = "ed25519") -> tuple[bytes, bytes]:
    """A new TLS key pair as (PKCS#8 private PEM, SubjectPublicKeyInfo public PEM)."""
    render.parse_tls_key_type(key_type)
    return tls_keys.generate_ed25519_keypair()


def fqdn() -> str:
    """This host's canonical name, as `hostname --fqdn` finds it (getaddrinfo AI_CANONNAME)."""
    name = socket.gethostname()
    with contextlib.suppress(OSError, UnicodeError):
        for *_, canonical, _addr in socket.getaddrinfo(name, None, flags=socket.AI_CANONNAME):
            if canonical:
                return canonical
    return name


def tls_key_id(directory: Path) -> KeyId | None:
    """The key ID of tls-pubkey.pem (or of tls-privkey.pem's public half), None if neither."""
    pub, priv = directory / "tls-pubkey.pem", directory / "tls-privkey.pem"
    try:
        if pub.exists():
            return tls_keys.public_key_id(pub.read_bytes())
        if priv.exists():
            return tls_keys.private_key_id(priv.read_bytes())
    except OSError as exc:
        raise KeyFileError(f"{exc.filename}: {exc.strerror}") from None
    return None


def ssh_host_key(host: str = "localhost") -> render.SshKey | None:
    """This machine's SSH host key as ssh-keyscan sees it on HOST, or None (no sshd)."""
    keyscan = shutil.which("ssh-keyscan")
    if keyscan is None:
        return None
    for key_type in SSH_KEY_TYPES:
        argv = [keyscan, "-T", "5", "-t", key_type, host]
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_KEYSCAN_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            found = render.parse_keyscan(done.stdout.decode("ascii", "replace"), host)
            if found is not None:
                return found
    return None


def next_backup_name(path: Path) -> Path:
    """PATH.~N~ with N one more than the highest existing backup, as cp --backup=numbered."""
    highest = 0
    prefix = path.name + ".~"
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            name = entry.name
            if name.startswith(prefix) and name.endswith("~") and name[len(prefix) : -1].isdigit():
                highest = max(highest, int(name[len(prefix) : -1]))
    return path.with_name(f"{prefix}{highest + 1}~")


def write_private(path: Path, data: bytes, *, backup: bool) -> Path | None:
    """Write DATA to PATH (mode 0600) atomically; move an old file to PATH.~N~ first if BACKUP."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    old: Path | None = None
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if backup and path.exists():
            old = next_backup_name(path)
            os.link(path, old)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise KeyGenError(f"{exc.filename or path}: {exc.strerror}") from None
    return old
