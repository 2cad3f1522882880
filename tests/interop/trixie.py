"""Debian 13 (trixie)'s Mandos 1.8.19 as a test partner, run inside a trixie chroot.

Rules of this module:
- The chroot is made by mmdebstrap with Debian's ``mandos`` and ``mandos-client`` installed
  (``tests/vm/build.py``: ``ensure_trixie_mandos_chroot``, cached in ``$MANDOS_VM_CACHE``). Its
  programs run there, with trixie's Python 3.13 and libraries; the host's apt sources are never
  touched.
- Each program runs in a private mount namespace (``unshare --mount``): /proc and /dev bound in,
  a fresh tmpfs on the chroot's /tmp, and the test's own directory at ``/tmp/work``. Nothing is
  left in the cached chroot, and the namespace ends with its processes.
- The keys are the ones ``mandos-client``'s postinst made in the chroot (``/etc/keys/mandos``);
  the section is made by trixie's own ``mandos-keygen --password``.
- The chroot shares the host's network namespace, so loopback reaches our programs; processes
  are ended by PID (their session), and gpg-agents by the tag in their environment.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.interop.reference import TAG_VAR, Bounded, end_session, reap_tagged_agents, run_bounded
from tests.ports import free_port
from tests.vm import build

VERSION: Final = "1.8.19"
LIBDIR: Final = "/usr/lib/x86_64-linux-gnu/mandos"
KEYDIR: Final = "/etc/keys/mandos"
WORK: Final = "/tmp/work"  # the test's directory, inside the chroot
PASSWORD: Final = b"trixie interop \xc3\xa5 \x01 end"
_ENV: Final = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

# Runs in the new mount namespace: mount what the chroot needs, then chroot and exec.
_ENTER: Final = """
set -e
root=$1 work=$2; shift 2
mount --bind /proc "$root/proc"
mount --bind /dev "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mkdir "$root/tmp/work"
mount --bind "$work" "$root/tmp/work"
exec chroot "$root" "$@"
"""


@functools.cache
def trixie_root() -> Path:
    """The cached chroot with Debian 13's Mandos (built on first use)."""
    return build.ensure_trixie_mandos_chroot()


def in_chroot(work: Path, argv: Sequence[str]) -> list[str]:
    """The command line that runs ``argv`` in the chroot with ``work`` at /tmp/work."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _ENTER, "enter",
            str(trixie_root()), str(work), *argv]  # fmt: skip


def run_in_chroot(
    work: Path, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
) -> Bounded:
    """Run ``argv`` in the chroot until it exits or ``timeout``; gpg-agents it left are ended."""
    tag = secrets.token_hex(8)
    try:
        return run_bounded(in_chroot(work, argv), env={**_ENV, TAG_VAR: tag, **(env or {})},
                           timeout=timeout)  # fmt: skip
    finally:
        reap_tagged_agents(tag)


@dataclass(frozen=True)
class TrixieKeys:
    """The chroot client's keys (copied out to ``keydir``) and trixie keygen's section."""

    keydir: Path
    section: str


def trixie_keys(dest: Path) -> TrixieKeys:
    """Copy the chroot's client keys to ``dest``; make a section for PASSWORD with its keygen."""
    work = Path(tempfile.mkdtemp(prefix="mandos-trixie-"))
    try:
        (work / "password").write_bytes(PASSWORD)
        done = run_in_chroot(
            work,
            ["mandos-keygen", "--no-ssh", "--dir", KEYDIR, "--passfile", f"{WORK}/password"],
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"trixie mandos-keygen failed: {done.stderr.decode()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("pubkey.txt", "seckey.txt", "tls-pubkey.pem", "tls-privkey.pem"):
        shutil.copy2(trixie_root() / KEYDIR.lstrip("/") / name, dest / name)
    return TrixieKeys(dest, done.stdout.decode())


def client_argv(connect: str, *extra: str) -> list[str]:
    """Trixie's mandos-client with the chroot's keys, touching no interface and no hook."""
    return [
        f"{LIBDIR}/plugins.d/mandos-client", f"--connect={connect}", "--interface=none",
        f"--network-hook-dir={WORK}", f"--pubkey={KEYDIR}/pubkey.txt",
        f"--seckey={KEYDIR}/seckey.txt", f"--tls-pubkey={KEYDIR}/tls-pubkey.pem",
        f"--tls-privkey={KEYDIR}/tls-privkey.pem", *extra,
    ]  # fmt: skip


def run_trixie_client(work: Path, connect: str, *, timeout: float) -> Bounded:
    """Trixie's mandos-client against ``connect`` until it prints a password or ``timeout``."""
    return run_in_chroot(
        work,
        client_argv(connect),
        timeout=timeout,
        env={"MANDOSPLUGINHELPERDIR": f"{LIBDIR}/plugin-helpers"},
    )


class TrixieServer:
    """Trixie's ``mandos`` in the chroot, in the foreground on 127.0.0.1, without Zeroconf."""

    def __init__(self, clients_conf: str, work: Path, *, extra_args: Sequence[str] = ()) -> None:
        self.port = free_port("127.0.0.1")
        self.work = work
        work.mkdir(exist_ok=True)
        (work / "conf").mkdir()
        (work / "conf" / "mandos.conf").write_text("[DEFAULT]\n")
        (work / "conf" / "clients.conf").write_text(clients_conf)
        state = work / "state"
        state.mkdir()
        uid = int(_passwd_field(trixie_root(), "_mandos", 2))
        os.chown(state, uid, -1)  # it writes its state after becoming _mandos
        work.chmod(0o755)
        self.argv = [
            "python3", "/usr/sbin/mandos", "--foreground", "--debug", "--no-dbus",
            "--no-zeroconf", "--no-restore", "--no-ipv6", "--address", "127.0.0.1",
            "--port", str(self.port), "--configdir", f"{WORK}/conf",
            "--statedir", f"{WORK}/state", *extra_args,
        ]  # fmt: skip
        self._tag = secrets.token_hex(8)
        self._log = (work / "server.log").open("wb")
        self.proc = subprocess.Popen(
            in_chroot(work, self.argv),
            env={**_ENV, TAG_VAR: self._tag},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def connect(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.work / "server.log").read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while needle not in (text := self.log()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not in trixie server log:\n{text[-3000:]}")
            time.sleep(0.1)
        return text

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        end_session(self.proc.pid)
        self.proc.wait(timeout=30)
        reap_tagged_agents(self._tag)
        self._log.close()


@contextlib.contextmanager
def trixie_server(clients_conf: str, work: Path) -> Iterator[TrixieServer]:
    """Trixie's server, listening (its "Now listening" line seen) until the block ends."""
    server = TrixieServer(clients_conf, work)
    try:
        server.wait_for_log("Now listening on address")
        yield server
    finally:
        server.stop()


def _passwd_field(root: Path, user: str, index: int) -> str:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return fields[index]
    raise LookupError(user)
