"""OpenPGP for Mandos: decrypt the secret in the client, encrypt it in mandos-keygen.

Rules of this module:
1. It is the only importer of pysequoia, and imports it lazily: an initramfs without pysequoia
   still decrypts, through gpg.
2. pysequoia runs in-process first. Its decryptor uses one encryption-capable subkey only, so
   when that fails we retry with one single-subkey certificate per subkey, starting with the
   subkeys the message names in its PKESK packets (RFC 4880 5.1).
3. pysequoia refuses keys created "in the future", which is every key in an initramfs whose
   clock says 1970.  gpg accepts them with --ignore-time-conflict and --ignore-valid-from, so
   gpg, in a private throw-away home directory, is the fallback (the initramfs has only it):
   one run imports both keys, one decrypts; its gpg-agent is killed and the directory removed
   afterwards.  What only gpg needs (subprocess, shutil, tempfile, pathlib) is imported when
   gpg runs: the client's usual pysequoia path does not pay for it.
4. Every failure becomes DecryptError with one line; no key or secret bytes ever reach a
   message or a log line.
5. Run with real ids that are not root under an effective root (password-agent starts
   mandos-client so, as the reference does), gpg would drop to the real user by itself
   (libgcrypt takes that for a set-user-ID install) in a home it cannot write: the home is
   then the real user's, and every gpg program runs as the real user from the start.
"""

from __future__ import annotations

import os

from mandos.adapters import lazylog
from mandos.core.errors import DecryptError, KeyFileError, MandosError
from mandos.core.values import Fingerprint

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from contextlib import AbstractContextManager
    from pathlib import Path
    from typing import Any, Final
# imported by gpg_home only: pathlib costs the client ~0.6 MiB

log = lazylog.get(__name__)

#: gpg options for a non-interactive run that never reads a user's configuration.
GPG_BATCH: Final = ("--batch", "--no-tty", "--no-options", "--quiet", "--no-permission-warning")
#: Accept keys and signatures whose time is after the system clock (no RTC in the initramfs).
GPG_TIME_TOLERANT: Final = ("--ignore-time-conflict", "--ignore-valid-from")
_GPG_TIMEOUT: Final = 120.0
_PKESK_V3: Final = 3


# --------------------------------------------------------------------------- gpg home


def _as_real_user() -> dict[str, Any]:
    """Popen arguments running gpg as the real user under an effective root (rule 5), or none."""
    uid, gid = os.getuid(), os.getgid()
    if os.geteuid() != 0 or uid == 0:
        return {}
    return {"user": uid, "group": gid, "extra_groups": []}


def gpg_home(prefix: str = "mandos-gpg-") -> AbstractContextManager[Path]:
    """A private (0700) temporary GnuPG home; its agent is killed and the directory removed."""
    import contextlib  # here: it imports functools and collections, which pysequoia's path
    # (the client's) never needs

    return contextlib.contextmanager(_gpg_home)(prefix)


def _gpg_home(prefix: str) -> Iterator[Path]:
    import contextlib
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    home = Path(tempfile.mkdtemp(prefix=prefix))
    real = _as_real_user()
    if real:
        os.chown(home, real["user"], real["group"])
    try:
        yield home
    finally:
        gpgconf = shutil.which("gpgconf")
        if gpgconf is not None:
            actions = ("--kill", "--remove-socketdir") if _socket_base(os.getuid()) else ("--kill",)
            for action in actions:
                argv = [gpgconf, "--homedir", str(home), action]
                if action == "--kill":
                    argv.append("all")
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    subprocess.run(  # noqa: S603 - fixed argv, no shell
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        timeout=30,
                        check=False,
                        **real,
                    )
        shutil.rmtree(home, ignore_errors=True)


#: Where GnuPG puts a home's sockets outside the home (homedir.c), if one exists for the uid;
#: without them the sockets are in the home, and go with it.
_SOCKET_BASES: Final = ("/run/gnupg/user", "/run/user", "/var/run/user")


def _socket_base(uid: int) -> bool:
    """Whether gpg may have made a socket directory outside the home, for ``--remove-socketdir``
    (never in an initramfs: one gpgconf run less there)."""
    from pathlib import Path  # already imported by gpg_home, its only caller

    return any(Path(base, str(uid)).is_dir() for base in _SOCKET_BASES)


def run_gpg(
    home: Path,
    args: Sequence[str],
    stdin: bytes = b"",
    *,
    what: str,
    error: type[MandosError] = DecryptError,
) -> bytes:
    """Run gpg in HOME and return its stdout; a failure raises ERROR, a line naming WHAT."""
    import shutil
    import subprocess

    gpg = shutil.which("gpg")
    if gpg is None:
        raise error(f"{what}: gpg is not installed")
    argv = [gpg, *GPG_BATCH, "--homedir", str(home), *args]
    try:
        done: subprocess.CompletedProcess[bytes] = subprocess.run(  # noqa: S603 - fixed argv
            argv,
            input=stdin,
            capture_output=True,
            timeout=_GPG_TIMEOUT,
            check=False,
            **_as_real_user(),
        )
    except subprocess.TimeoutExpired:
        raise error(f"{what}: gpg timed out") from None
    except OSError as exc:
        raise error(f"{what}: cannot run gpg: {exc.strerror}") from None
    if done.returncode != 0:
        raise error(f"{what}: {_gpg_reason(done.stderr)}")
    return done.stdout


def _gpg_reason(stderr: bytes) -> str:
    """The last 'gpg:' line of gpg's stderr, as one short line (gpg never prints key bytes)."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("gpg:")]
    reason = (errors or lines or ["gpg failed"])[-1]
    return reason[:200]


# --------------------------------------------------------------------------- decrypt


class _SequoiaFailed(Exception):
    """pysequoia could not do it; try gpg."""


def decrypt(message: bytes, seckey_armored: bytes, pubkey_armored: bytes | None = None) -> bytes:
    """The plaintext of a binary or armoured OpenPGP message encrypted to the secret key."""
    try:
        return _sequoia_decrypt(message, seckey_armored)
    except _SequoiaFailed as exc:
        log.debug("pysequoia cannot decrypt (%s); falling back to gpg", exc)
    return gpg_decrypt(message, seckey_armored, pubkey_armored)


def gpg_decrypt(
    message: bytes, seckey_armored: bytes, pubkey_armored: bytes | None = None
) -> bytes:
    """Decrypt with gpg in a private temporary home, tolerating keys from the future."""
    with gpg_home() as home:
        _import_keys(home, seckey_armored, pubkey_armored)
        return run_gpg(
            home,
            [
                *GPG_TIME_TOLERANT,
                "--pinentry-mode",
                "error",
                "--trust-model",
                "always",
                "--decrypt",
            ],
            message,
            what="cannot decrypt",
        )


def _import_keys(home: Path, seckey_armored: bytes, pubkey_armored: bytes | None) -> None:
    """Both keys in one gpg run (each gpg start is seconds in a TCG guest). If that fails, each
    alone, as the reference does: the public key is optional (the secret key holds it too)."""
    import contextlib

    args = [*GPG_TIME_TOLERANT, "--import"]
    if pubkey_armored:
        with contextlib.suppress(DecryptError):
            run_gpg(home, args, pubkey_armored + b"\n" + seckey_armored, what="cannot import key")
            return
        with contextlib.suppress(DecryptError):
            run_gpg(home, args, pubkey_armored, what="pubkey")
    run_gpg(home, args, seckey_armored, what="cannot import key")


def _sequoia() -> Any:
    try:
        import pysequoia
    except ImportError as exc:
        raise _SequoiaFailed("pysequoia is not installed") from exc
    return pysequoia


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _sequoia_decrypt(message: bytes, seckey_armored: bytes) -> bytes:
    """Decrypt in-process, trying every encryption subkey; raise _SequoiaFailed otherwise."""
    pgp = _sequoia()
    try:
        tsk = pgp.Tsk.from_bytes(seckey_armored)
    except Exception as exc:  # pysequoia raises bare exceptions
        raise _SequoiaFailed(f"secret key: {_first_line(exc)}") from None
    reason = "no usable key"
    for candidate in [tsk, *_single_subkey_tsks(pgp, seckey_armored, message)]:
        try:
            result = pgp.decrypt(message, candidate.decryptor())
        except Exception as exc:  # translated below, one line
            reason = _first_line(exc)
            continue
        plaintext = result.bytes
        if isinstance(plaintext, bytes):
            return plaintext
    raise _SequoiaFailed(reason)


def _single_subkey_tsks(pgp: Any, seckey_armored: bytes, message: bytes) -> list[Any]:
    """One Tsk per secret subkey (primary part + that subkey), message recipients first."""
    try:
        packets = list(pgp.packet.PacketPile.from_bytes(seckey_armored))
        recipients = _recipient_key_ids(pgp, message)
    except Exception:  # unparseable: nothing more to try in-process
        return []
    tag = pgp.packet.Tag
    head: list[Any] = []
    groups: list[list[Any]] = []
    for packet in packets:
        if packet.tag == tag.SecretSubkey:
            groups.append([packet])
        elif groups:
            groups[-1].append(packet)
        else:
            head.append(packet)
    if len(groups) < 2 and not recipients:
        return []
    groups.sort(key=lambda g: g[0].key_id not in recipients)
    tsks = []
    for group in groups:
        try:  # not contextlib.suppress: contextlib imports functools (client RSS)
            tsks.append(pgp.Tsk.from_packets(head + group))
        except Exception:  # noqa: S112 - a group that is not a key is skipped
            continue
    return tsks


def _recipient_key_ids(pgp: Any, message: bytes) -> set[str]:
    """Lower-case hex key IDs named by the message's version 3 PKESK packets."""
    ids = set()
    for packet in pgp.packet.PacketPile.from_bytes(message):
        if packet.tag == pgp.packet.Tag.PKESK:
            body = bytes(packet.body)
            if len(body) >= 9 and body[0] == _PKESK_V3:
                ids.add(body[1:9].hex())
    return ids


# --------------------------------------------------------------------------- encrypt


def encrypt(
    plaintext: bytes,
    pubkey_armored: bytes,
    *,
    seckey_armored: bytes | None = None,
    also_to: Sequence[bytes] = (),
) -> bytes:
    """A binary OpenPGP message to the public key (and ALSO_TO), signed by the secret key."""
    try:
        return _sequoia_encrypt(plaintext, [pubkey_armored, *also_to], seckey_armored)
    except _SequoiaFailed as exc:
        log.debug("pysequoia cannot encrypt (%s); falling back to gpg", exc)
    return gpg_encrypt(plaintext, pubkey_armored, seckey_armored=seckey_armored, also_to=also_to)


def _sequoia_encrypt(plaintext: bytes, pubkeys: Sequence[bytes], seckey: bytes | None) -> bytes:
    pgp = _sequoia()
    try:
        certs = [pgp.Cert.from_bytes(pubkey) for pubkey in pubkeys]
        signer = pgp.Tsk.from_bytes(seckey).signer() if seckey else None
        out = pgp.encrypt(plaintext, certs, signer=signer, armor=False)
    except Exception as exc:  # translated once, here
        raise _SequoiaFailed(_first_line(exc)) from None
    if not isinstance(out, bytes):
        raise _SequoiaFailed("pysequoia returned no bytes")
    return out


def gpg_encrypt(
    plaintext: bytes,
    pubkey_armored: bytes,
    *,
    seckey_armored: bytes | None = None,
    also_to: Sequence[bytes] = (),
) -> bytes:
    """Encrypt (and sign) with gpg in a private temporary home, as the reference does."""
    with gpg_home() as home:
        for key in (pubkey_armored, *also_to, *([seckey_armored] if seckey_armored else [])):
            run_gpg(home, [*GPG_TIME_TOLERANT, "--import"], key, what="cannot import key")
        fpr = str(fingerprint(pubkey_armored, home=home))
        recipients = [fpr, *(str(fingerprint(key, home=home)) for key in also_to)]
        args = [*GPG_TIME_TOLERANT, "--trust-model", "always"]
        args += [*(a for r in recipients for a in ("--recipient", r)), "--encrypt"]
        if seckey_armored:
            args += ["--pinentry-mode", "error", "--local-user", fpr, "--sign"]
        return run_gpg(home, args, plaintext, what="cannot encrypt")


# --------------------------------------------------------------------------- inspect


def fingerprint(pubkey_armored: bytes, *, home: Path | None = None) -> Fingerprint:
    """The v4 fingerprint of an OpenPGP key's primary key (pysequoia, else gpg in HOME)."""
    if home is None:
        try:
            pgp = _sequoia()
        except _SequoiaFailed:
            with gpg_home() as tmp:
                return fingerprint(pubkey_armored, home=tmp)
        try:
            return Fingerprint.parse(pgp.Cert.from_bytes(pubkey_armored).fingerprint)
        except Exception as exc:  # pysequoia raises bare exceptions
            raise KeyFileError(f"not an OpenPGP key: {_first_line(exc)}") from None
    out = run_gpg(
        home,
        ["--with-colons", "--import-options", "show-only", "--import"],
        pubkey_armored,
        what="not an OpenPGP key",
        error=KeyFileError,
    )
    for line in out.decode("ascii", "replace").splitlines():
        fields = line.split(":")
        if fields[0] == "fpr" and len(fields) > 9:
            return Fingerprint.parse(fields[9])
    raise KeyFileError("not an OpenPGP key: no fingerprint found")
