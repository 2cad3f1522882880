"""The cryptsetup(8) program, as mandos-luks drives it: one method per command it runs.

Secrets never appear on a command line: each passphrase goes through its own pipe, named to
cryptsetup as ``/dev/fd/N`` (``--key-file`` and ``--new-keyfile`` read it to the end, with no
newline processing, cryptsetup(8) "NOTES ON PASSPHRASE PROCESSING"). Every failure becomes one
:class:`~mandos.luks.model.LuksError` line with cryptsetup's own last message.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from mandos.core.values import Secret
from mandos.luks.model import Header, LuksError, parse_luks2_metadata, parse_luks_dump

#: cryptsetup's exit status when a passphrase opens no key slot (cryptsetup(8) RETURN CODES).
EXIT_WRONG_PASSPHRASE: Final = 2
_TIMEOUT: Final = 300


@contextlib.contextmanager
def _secret_pipes(secrets: Sequence[Secret]) -> Iterator[list[int]]:
    """A read end per secret, already filled and closed for writing (secrets are small)."""
    fds: list[int] = []
    try:
        for secret in secrets:
            r, w = os.pipe()
            fds.append(r)
            try:
                os.write(w, secret.reveal())  # < 64 KiB: fits the pipe buffer
            finally:
                os.close(w)
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


def _fill(arg: str, fds: Sequence[int]) -> str:
    """An option's ``{N}`` becomes the path of secret N's pipe; devices are left alone."""
    if arg.startswith("--"):
        for i, fd in enumerate(fds):
            arg = arg.replace(f"{{{i}}}", f"/dev/fd/{fd}")
    return arg


class Cryptsetup:
    """Runs ``cryptsetup``; ``kdf_args`` go to every command that makes a key slot."""

    def __init__(self, program: str = "cryptsetup", kdf_args: Sequence[str] = ()) -> None:
        self.program = program
        self.kdf_args = tuple(kdf_args)

    def _run(
        self,
        args: Sequence[str],
        *,
        what: str,
        secrets: Sequence[Secret] = (),
        stdin: bytes = b"",
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        with _secret_pipes(secrets) as fds:
            argv = [self.program, *(_fill(a, fds) for a in args)]
            try:
                done = subprocess.run(  # noqa: S603 - fixed program, no shell, no secrets
                    argv,
                    input=stdin,
                    capture_output=True,
                    pass_fds=fds,
                    timeout=_TIMEOUT,
                    check=False,
                    env={**os.environ, "LC_ALL": "C"},
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise LuksError(f"{what}: cannot run {self.program}: {exc}") from None
        if check and done.returncode != 0:
            raise LuksError(f"{what}: {self.reason(done)}")
        return done

    @staticmethod
    def reason(done: subprocess.CompletedProcess[bytes]) -> str:
        """cryptsetup's last line of complaint, or its exit status."""
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return lines[-1].strip() if lines else f"cryptsetup exited with status {done.returncode}"

    def header(self, device: str) -> Header:
        """The volume's header; LuksError if DEVICE is not a LUKS volume."""
        if not Path(device).exists():
            raise LuksError(f"{device}: no such device or file")
        if self._run(["isLuks", device], what=device, check=False).returncode != 0:
            raise LuksError(f"{device}: not a LUKS volume")
        text = self._run(["luksDump", device], what=device).stdout.decode("utf-8", "replace")
        version, uuid, slots = parse_luks_dump(text)
        if version == 1:
            return Header(version=1, uuid=uuid, slots=slots)
        meta = self._run(["luksDump", "--dump-json-metadata", device], what=device)
        parsed = parse_luks2_metadata(meta.stdout.decode("utf-8", "replace"))
        return Header(version=2, uuid=uuid, slots=parsed.slots, tokens=parsed.tokens)

    def opens(self, device: str, secret: Secret, slot: int | None = None) -> bool:
        """Whether SECRET opens DEVICE (key slot SLOT only, if given); nothing is activated."""
        args = ["open", "--test-passphrase", "--key-file={0}"]
        if slot is not None:
            args.append(f"--key-slot={slot}")
        done = self._run([*args, device], what=device, secrets=[secret], check=False)
        if done.returncode == 0:
            return True
        if done.returncode == EXIT_WRONG_PASSPHRASE:
            return False
        raise LuksError(f"{device}: {self.reason(done)}")

    def add_key(self, device: str, existing: Secret, new: Secret, slot: int) -> None:
        """Put NEW into key slot SLOT, unlocking with EXISTING."""
        args = [
            "luksAddKey", "--batch-mode", "--key-file={0}", "--new-keyfile={1}",
            f"--new-key-slot={slot}", *self.kdf_args, device,
        ]  # fmt: skip
        self._run(args, what=f"{device}: adding key slot {slot}", secrets=[existing, new])

    def kill_slot(self, device: str, slot: int) -> None:
        """Wipe key slot SLOT (batch mode: no passphrase needed while another slot remains)."""
        self._run(
            ["luksKillSlot", "--batch-mode", device, str(slot)], what=f"{device}: slot {slot}"
        )

    def import_token(self, device: str, token: dict[str, Any], token_id: int | None = None) -> None:
        """Add a LUKS2 token, or replace token TOKEN_ID."""
        args = ["token", "import", "--json-file=-"]
        if token_id is not None:
            args += [f"--token-id={token_id}", "--token-replace"]
        data = json.dumps(token).encode("utf-8")
        self._run([*args, device], what=f"{device}: writing the Mandos token", stdin=data)

    def remove_token(self, device: str, token_id: int) -> None:
        """Remove LUKS2 token TOKEN_ID."""
        args = ["token", "remove", f"--token-id={token_id}", device]
        self._run(args, what=f"{device}: removing token {token_id}")

    def backup_header(self, device: str, path: Path) -> None:
        """Copy the whole header (key slots included) to PATH, which must not exist."""
        args = ["luksHeaderBackup", device, f"--header-backup-file={path}"]
        self._run(args, what=f"{device}: header backup")

    def restore_header(self, device: str, path: Path) -> None:
        """Write the header saved in PATH back over DEVICE's."""
        args = ["luksHeaderRestore", "--batch-mode", device, f"--header-backup-file={path}"]
        self._run(args, what=f"{device}: header restore")
