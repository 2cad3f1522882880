"""The client machine around the volumes: its client keys, the section, crypttab, initramfs.

Keys are made with mandos-keygen's own parts (same files, modes and defaults); the section is
mandos-keygen's ``--password`` section, with the secret encrypted to every key that must read
it during a key rotation.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mandos.adapters import openpgp
from mandos.core.errors import KeyFileError
from mandos.core.values import KeyId, Secret
from mandos.keygen.render import (
    PRIMARY_TYPES,
    SUBKEY_TYPES,
    KeySpec,
    client_section,
    parse_key_type,
)
from mandos.keygen.threshold import ThresholdPlan, write_shares
from mandos.keygen.tools import (
    fqdn,
    generate_openpgp_key,
    generate_tls_key,
    ssh_host_key,
    tls_key_id,
)
from mandos.keygen.tools import (
    write_private as write_key,
)
from mandos.luks.model import LuksError, add_initramfs_option, device_names
from mandos.luks.store import write_private

DEFAULT_CRYPTTAB: Final = "/etc/crypttab"
#: mandos-keygen's four files, in the order tools writes them: secret, public, TLS private, public.
KEY_FILES: Final = ("seckey.txt", "pubkey.txt", "tls-privkey.pem", "tls-pubkey.pem")
DEFAULT_UPDATE_INITRAMFS: Final = "update-initramfs -u -k all"


@dataclass(frozen=True, slots=True)
class ClientKeys:
    """A directory of the client's four key files, read."""

    directory: Path
    pubkey: bytes
    seckey: bytes
    key_id: KeyId


def default_keydir() -> Path:
    """mandos-keygen's default: /etc/keys/mandos, or /etc/mandos/keys if the former is missing."""
    first = Path("/etc/keys/mandos")
    return first if first.is_dir() else Path("/etc/mandos/keys")


def have_keys(keydir: Path) -> bool:
    """Whether all four key files exist in KEYDIR."""
    return all((keydir / name).exists() for name in KEY_FILES)


def key_spec(name: str, key_type: str, subkey_type: str) -> KeySpec:
    """What keys to make, from mandos-keygen's type words (UsageError names a bad one)."""
    return KeySpec(
        name=name,
        key_type=parse_key_type(key_type, PRIMARY_TYPES, "--key-type"),
        subkey_type=parse_key_type(subkey_type, SUBKEY_TYPES, "--subkey-type"),
    )


def client_name(given: str | None) -> str:
    """The client's name: as given, else this host's FQDN (as mandos-keygen)."""
    return given or fqdn()


def make_keys(keydir: Path, spec: KeySpec) -> None:
    """Generate the four key files into KEYDIR (a 0700 directory made if missing)."""
    try:
        keydir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise LuksError(f"{keydir}: {exc.strerror}") from None
    tls_priv, tls_pub = generate_tls_key()
    pub, sec = generate_openpgp_key(spec)
    for name, data in zip(KEY_FILES, (sec, pub, tls_priv, tls_pub), strict=True):
        write_key(keydir / name, data, backup=False)


def read_keys(keydir: Path) -> ClientKeys:
    """The key files of KEYDIR; KeyFileError names the one missing."""
    try:
        pub = (keydir / "pubkey.txt").read_bytes()
        sec = (keydir / "seckey.txt").read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{exc.filename}: {exc.strerror}") from None
    key_id = tls_key_id(keydir)
    if key_id is None:
        raise KeyFileError(f"{keydir}: no tls-pubkey.pem or tls-privkey.pem")
    return ClientKeys(keydir, pub, sec, key_id)


def install_keys(source: Path, keydir: Path) -> None:
    """Move the key files of SOURCE over KEYDIR's, then drop SOURCE.

    No backup of the old keys is kept: the old OpenPGP key could read the transitional section,
    which holds the new passphrase.
    """
    for name in KEY_FILES:
        write_key(keydir / name, (source / name).read_bytes(), backup=False)
    shutil.rmtree(source, ignore_errors=True)


def section(
    name: str, secret: Secret, keys: ClientKeys, also: Sequence[ClientKeys] = (), *, ssh: bool
) -> str:
    """The clients.conf section: KEYS' key ID first, then ALSO's; the secret readable by all."""
    return section_maker(name, keys, also, ssh=ssh)(secret.reveal())


def section_maker(
    name: str, keys: ClientKeys, also: Sequence[ClientKeys] = (), *, ssh: bool
) -> Callable[[bytes], str]:
    """:func:`section` for any payload (a passphrase, or one share of it); one ssh-keyscan."""
    fingerprint = openpgp.fingerprint(keys.pubkey)
    host_key = ssh_host_key("localhost") if ssh else None

    def make(payload: bytes) -> str:
        message = openpgp.encrypt(
            payload, keys.pubkey, seckey_armored=keys.seckey, also_to=[k.pubkey for k in also]
        )
        text = client_section(name, fingerprint, message, key_id=keys.key_id, ssh=host_key)
        if also:
            ids = " ".join(str(k.key_id).lower() for k in (keys, *also))
            text = text.replace(f"key_id = {str(keys.key_id).lower()}\n", f"key_id = {ids}\n", 1)
        return text

    return make


def write_sections(
    name: str,
    passphrase: Secret,
    make: Callable[[bytes], str],
    output: str | None,
    split: ThresholdPlan | None,
    *,
    replace: bool,
) -> str:
    """The section to OUTPUT (or standard output); with SPLIT, one section file per share in its
    directory instead (mandos-keygen --threshold's files; old ones kept as backups if REPLACE,
    refused otherwise). Where they went."""
    if split is None:
        return write_output(make(passphrase.reveal()), output)
    paths = write_shares(split, name, passphrase.reveal(), make, force=replace)
    files = ", ".join(str(path) for path in paths)
    return f"{files} ({split.count} shares, any {split.threshold} rebuild the passphrase)"


def write_output(text: str, output: str | None) -> str:
    """Write the section to OUTPUT (0600) or standard output; where it went."""
    if output is None or output == "-":
        import sys

        sys.stdout.write(text)
        sys.stdout.flush()
        return "standard output"
    write_private(Path(output), text.encode("utf-8"))
    return output


def wire_crypttab(crypttab: Path, volumes: Sequence[tuple[str, str]]) -> list[str]:
    """Add ``initramfs`` to the crypttab lines of (device, uuid) VOLUMES; a line per change."""
    try:
        text = crypttab.read_text()
        mode = crypttab.stat().st_mode & 0o7777
    except FileNotFoundError:
        return [f"{crypttab}: no such file; add a line for each device by hand"]
    except (OSError, UnicodeDecodeError) as exc:
        raise LuksError(f"{crypttab}: cannot read: {exc}") from None
    report = []
    for device, uuid in volumes:
        names = device_names(device, uuid, os.path.realpath(device))
        text, changed, seen = add_initramfs_option(text, names)
        report += [f"{crypttab}: {target}: added the initramfs option" for target in changed]
        if not seen:
            report.append(f"{crypttab}: no line for {device} (UUID={uuid}); add one by hand")
    if any("added" in line for line in report):
        write_private(crypttab, text.encode("utf-8"))
        os.chmod(crypttab, mode)  # noqa: PTH101 - keep crypttab's own mode (usually 0644)
    return report


def rebuild_initramfs(command: str) -> str:
    """Run the initramfs rebuild COMMAND; its report line, LuksError if it failed."""
    argv = shlex.split(command)
    if not argv:
        raise LuksError("--update-initramfs: empty command")
    try:
        done = subprocess.run(  # noqa: S603 - the administrator's own command, no shell
            argv, stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=1800
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise LuksError(f"{argv[0]}: {exc}") from None
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise LuksError(f"{command}: failed ({tail[-1] if tail else done.returncode})")
    return f"rebuilt the initramfs ({command})"
