"""Keys and clients.conf sections made by OUR mandos-keygen, once per session."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from mandos.keygen import main as keygen
from tests.keyfiles import client_key_args

#: Binary on purpose: the password must come out byte for byte.
PASSWORD = b"e2e password \xc3\xa5\xc3\xa4\xc3\xb6 \x00\x01\xff end"
ED25519 = ("--type", "ed25519", "--subtype", "cv25519")


@dataclass(frozen=True)
class OurKeys:
    """A key directory from our keygen and the section it printed for PASSWORD."""

    keydir: Path
    section: str

    def client_args(self) -> list[str]:
        """mandos-client's key options for these files."""
        return client_key_args(self.keydir)

    def conf(self, **options: str) -> str:
        """The section with ``key = value`` lines appended (a checker that always succeeds)."""
        options.setdefault("checker", "true")
        extra = "".join(f"{key} = {value}\n" for key, value in options.items())
        return self.section.rstrip("\n") + "\n" + extra


def make_our_keys(base: Path, *key_options: str, name: str = "client1") -> OurKeys:
    """Run our keygen twice in-process: keys into ``base/keys``, then the section for PASSWORD."""
    keydir = base / "keys"
    keydir.mkdir(parents=True, mode=0o700)
    assert keygen.main(["--dir", str(keydir), "--name", name, *key_options]) == 0
    passfile = base / "password"
    passfile.write_bytes(PASSWORD)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = keygen.main(["--dir", str(keydir), "--name", name, "--passfile", str(passfile), "-S"])
    assert rc == 0
    return OurKeys(keydir, out.getvalue())


@pytest.fixture(scope="session")
def ed25519_keys(tmp_path_factory: pytest.TempPathFactory) -> OurKeys:
    """Ed25519 signing key, Cv25519 encryption subkey, Ed25519 TLS key."""
    return make_our_keys(tmp_path_factory.mktemp("ed25519"), *ED25519)
