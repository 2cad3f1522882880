"""mandos-client's key material: read and checked at start-up, used to decrypt what servers send.

Rules of this module:
1. Every key file is read and checked before the network is touched; KeyFileError names the
   file that cannot be used.
2. Key bytes are never logged; decrypt() logs the server and the reason only.
"""

from __future__ import annotations

from mandos.adapters import lazylog
from mandos.client.args import ClientOptions
from mandos.core.errors import DecryptError, KeyFileError, MandosError
from mandos.core.frozen import Frozen
from mandos.core.values import Secret

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from mandos.adapters.gnutls.session import RawKeyCredentials

log = lazylog.get("mandos.client")


class Keys(Frozen):  # not a dataclass: dataclasses costs ~1.2 MiB of RSS
    """The key material read at start-up (never logged)."""

    __slots__ = ("credentials", "pubkey", "seckey")
    credentials: RawKeyCredentials
    pubkey: bytes
    seckey: bytes

    def __init__(self, credentials: RawKeyCredentials, pubkey: bytes, seckey: bytes) -> None:
        self._init(credentials=credentials, pubkey=pubkey, seckey=seckey)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:  # not pathlib: it costs ~0.6 MiB of RSS
            return f.read()
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def load_keys(opts: ClientOptions) -> Keys:
    """Read and check every key file; KeyFileError names the file that cannot be used."""
    from mandos.adapters.gnutls.session import RawKeyCredentials

    pubkey = _read(opts.pubkey, "OpenPGP public key")
    seckey = _read(opts.seckey, "OpenPGP secret key")
    for data, path in ((pubkey, opts.pubkey), (seckey, opts.seckey)):
        if b"-----BEGIN PGP" not in data:
            raise KeyFileError(f"{path}: not an ASCII-armoured OpenPGP key")
    tls_pub = _read(opts.tls_pubkey, "TLS public key")
    tls_priv = _read(opts.tls_privkey, "TLS private key")
    credentials = RawKeyCredentials.from_pem(tls_pub, tls_priv, (opts.tls_pubkey, opts.tls_privkey))
    if opts.dh_params is not None:
        try:
            credentials.set_dh_params_pem(_read(opts.dh_params, "DH parameters"))
        except MandosError as exc:
            log.warning("Not using DH parameters: %s", exc)
    elif opts.dh_bits is not None:
        try:
            credentials.set_dh_bits(opts.dh_bits)
        except MandosError as exc:
            log.warning("Not using %d DH bits: %s", opts.dh_bits, exc)
    return Keys(credentials, pubkey, seckey)


def decrypt(label: str, blob: bytes, keys: Keys) -> Secret | None:
    """The password in ``blob``, or None (logged) if it does not decrypt."""
    from mandos.adapters import openpgp

    log.debug("Received %d bytes from %s; decrypting", len(blob), label)
    try:
        return Secret(openpgp.decrypt(blob, keys.seckey, keys.pubkey))
    except DecryptError as exc:
        log.warning("%s: cannot decrypt what it sent: %s", label, exc)
        return None
