"""mandos-keygen against Debian's real Mandos 1.8.16 (keygen, server and client).

The reference is fetched, unpacked and cached (.cache/reference, gitignored) by the shared
harness tests/interop/reference.py, which also ends every process and gpg-agent it starts.
"""

from __future__ import annotations

import base64
import configparser
from pathlib import Path

import pytest

from mandos.adapters import openpgp
from mandos.keygen import main as keygen
from tests.interop.reference import (
    REFERENCE_PASSWORD,
    PrivateSystemBus,
    ReferenceServer,
    cached_reference_keys,
    reference_password,
    reference_root,
    run_reference_client,
    with_options,
)

pytestmark = pytest.mark.interop

ED = ["--type", "ed25519", "--subtype", "cv25519"]


def section_of(text: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read_string(text)
    (name,) = parser.sections()
    return parser[name]


@pytest.fixture(scope="module")
def reference() -> Path:
    """The unpacked reference; unavailable is a failure, not a skip."""
    try:
        return reference_root()
    except RuntimeError as exc:
        pytest.fail(f"reference Mandos unavailable: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def our_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ourkeys")
    assert keygen.main(["--dir", str(directory), "--name", "client1", *ED]) == 0
    return directory


@pytest.mark.parametrize(
    ("label", "key_type", "subtype"),
    [("rsa4096", "RSA", "RSA"), ("ed25519", "ed25519", "cv25519")],
)
@pytest.mark.usefixtures("reference")
def test_we_decrypt_reference_keygen_output(
    label: str,
    key_type: str,
    subtype: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = cached_reference_keys(label, key_type=key_type, subtype=subtype)
    assert made.section_text is not None
    ref = section_of(made.section_text)
    seckey = (made.keydir / "seckey.txt").read_bytes()
    pubkey = (made.keydir / "pubkey.txt").read_bytes()
    secret = base64.b64decode(ref["secret"])
    assert openpgp.decrypt(secret, seckey, pubkey) == REFERENCE_PASSWORD
    # Our section for the reference's keys names them exactly as the reference does.
    assert keygen.main(["-d", str(made.keydir), "-F", "/dev/null", "-S", "-n", "client1"]) == 0
    ours = capsys.readouterr().out
    assert ours.splitlines()[:5] == made.section_text.splitlines()[:5]


@pytest.mark.usefixtures("reference")
def test_reference_keygen_uses_our_keys(our_keys: Path) -> None:
    text = reference_password(our_keys, b"to our keys", name="client1")
    secret = base64.b64decode(section_of(text)["secret"])
    seckey = (our_keys / "seckey.txt").read_bytes()
    assert openpgp.decrypt(secret, seckey) == b"to our keys"


@pytest.mark.parametrize("key_type", ["ed25519", "rsa"])
@pytest.mark.usefixtures("reference")
def test_real_server_and_client_accept_our_output(
    key_type: str,
    our_keys: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Debian's mandos serves our section; Debian's mandos-client decrypts it with our keys."""
    keydir = our_keys
    if key_type == "rsa":
        keydir = tmp_path / "rsa"
        keydir.mkdir()
        assert keygen.main(["--dir", str(keydir), "--length", "2048", "--sublength", "2048"]) == 0
    passfile = tmp_path / "password"
    passfile.write_bytes(REFERENCE_PASSWORD)
    assert keygen.main(["-d", str(keydir), "-F", str(passfile), "-S", "-n", "client1"]) == 0
    section = capsys.readouterr().out
    with (
        PrivateSystemBus() as bus,
        ReferenceServer(with_options(section, checker="true"), bus_env=bus.env) as server,
    ):
        done = run_reference_client(keydir, server.connect, timeout=60)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        assert done.stdout == REFERENCE_PASSWORD
