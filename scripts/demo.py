"""The Mandos demo: unlock a LUKS image with a password fetched from our server by our client.

    .venv/bin/python scripts/demo.py      (scripts/demo installs the dependencies first)

Every step runs the real programs as an operator would: mandos-keygen makes the client's keys
and the clients.conf section, ``mandos`` serves it on 127.0.0.1, plugin-runner runs mandos-client
as its only plugin, and what plugin-runner prints is handed to ``cryptsetup open
--test-passphrase``. Everything it starts is stopped by PID and its temporary directory removed,
whatever happens (a failed step, Ctrl-C or SIGTERM). Exit status: 0 on success, 1 if a step
failed, 130 when interrupted.
"""

# ruff: noqa: T201, S603

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: mandos, mandos-keygen, plugin-runner
STEPS = 6
SERVER_START_TIMEOUT = 60.0
UNLOCK_TIMEOUT = 120.0

T = TypeVar("T")


class DemoError(Exception):
    """A step failed; the message says what to look at."""


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived: unwind through every clean-up."""


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def tool(name: str) -> str:
    """The program ``name`` from the venv if it is there, else from PATH."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise DemoError(f"{name} not found (run scripts/install-deps)")
    return found


def run(argv: Sequence[str], *, stdin: bytes = b"", timeout: float = 120.0) -> bytes:
    """Run ``argv`` to completion; its stdout, or DemoError with its stderr."""
    done = subprocess.run(
        list(argv), input=stdin, capture_output=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise DemoError(f"{Path(argv[0]).name} exited with {done.returncode}: {err}")
    return done.stdout


def step(number: int, title: str, action: Callable[[], T]) -> T:
    """Print one numbered step, run it, and say how long it took."""
    print(f"{number}/{STEPS} {title} ...", end=" ", flush=True)
    started = time.monotonic()
    try:
        result = action()
    except BaseException:
        print("FAILED", flush=True)
        raise
    print(f"done ({time.monotonic() - started:.1f} s)", flush=True)
    return result


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def end_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM ``proc`` (and its process group), SIGKILL it after ``grace``; always reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Anything left in its group (a plugin, a checker) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def started(argv: Sequence[str], **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` in its own session; it is ended by PID when the block is left."""
    proc = subprocess.Popen(list(argv), start_new_session=True, **kwargs)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        end_process(proc)


class Demo:
    """The six steps, sharing one temporary directory."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.keydir = work / "keys"
        self.image = work / "disk.img"
        self.passfile = work / "password"
        self.section = ""
        self.port = 0

    def make_keys(self) -> None:
        self.keydir.mkdir(mode=0o700)
        run([tool("mandos-keygen"), "--dir", str(self.keydir), "--name", "demo-client",
             "--type", "ed25519", "--subtype", "cv25519"])  # fmt: skip

    def make_image(self) -> None:
        password = secrets.token_urlsafe(24).encode()
        fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(password)
        with self.image.open("wb") as f:
            f.truncate(32 * 1024 * 1024)  # LUKS2's header alone takes 16 MiB
        run([tool("cryptsetup"), "luksFormat", "--type", "luks2", "--pbkdf", "pbkdf2",
             "--pbkdf-force-iterations", "1000", "--batch-mode", str(self.image),
             "--key-file", "-"], stdin=password)  # fmt: skip

    def make_section(self) -> None:
        out = run([tool("mandos-keygen"), "--dir", str(self.keydir), "--name", "demo-client",
                   "--passfile", str(self.passfile), "--no-ssh"])  # fmt: skip
        self.section = out.decode()
        if "secret =" not in self.section:
            raise DemoError("mandos-keygen printed no secret")

    @contextlib.contextmanager
    def server(self) -> Iterator[subprocess.Popen[bytes]]:
        """Our server on 127.0.0.1 with the section as its clients.conf, until the block ends."""
        confdir, statedir = self.work / "conf", self.work / "state"
        confdir.mkdir()
        statedir.mkdir()
        (confdir / "mandos.conf").write_text("[DEFAULT]\n")
        (confdir / "clients.conf").write_text(self.section)
        self.port = free_port()
        log = self.work / "server.log"
        argv = [sys.executable, "-m", "mandos.server", "--foreground", "--debug",
                "--no-zeroconf", "--no-dbus", "--address=127.0.0.1", f"--port={self.port}",
                f"--configdir={confdir}", f"--statedir={statedir}"]  # fmt: skip
        with log.open("wb") as out, started(argv, stdout=out, stderr=subprocess.STDOUT) as proc:
            deadline = time.monotonic() + SERVER_START_TIMEOUT
            while "Listening on port" not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise DemoError(f"the server did not start; its log:\n{tail}")
                time.sleep(0.05)
            yield proc

    def fetch_password(self) -> bytes:
        """plugin-runner with mandos-client as its only plugin: the password it prints."""
        from mandos.plugins.layout import install_plugin_dir

        plugins, hooks = self.work / "plugins.d", self.work / "network-hooks.d"
        hooks.mkdir()
        # The wrapper is setuid root, as the reference ships it, and plugin-runner honours that
        # bit: the client runs as root (not 65534) and can read the 0600 key files.
        install_plugin_dir(plugins, names=["mandos-client"], override_dir=None)
        k = self.keydir
        options = ",".join([
            f"--connect=127.0.0.1:{self.port}",
            f"--pubkey={k / 'pubkey.txt'}", f"--seckey={k / 'seckey.txt'}",
            f"--tls-pubkey={k / 'tls-pubkey.pem'}", f"--tls-privkey={k / 'tls-privkey.pem'}",
            "--interface=none",  # the demo never touches the machine's interfaces
            f"--network-hook-dir={hooks}",
        ])  # fmt: skip
        argv = [tool("plugin-runner"), f"--plugin-dir={plugins}",
                f"--config-file={self.work / 'plugin-runner.conf'}",  # absent: no extra options
                f"--options-for=mandos-client:{options}"]  # fmt: skip
        # Its own session: no controlling terminal, so a failure cannot end in a prompt.
        with started(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE) as proc:  # fmt: skip
            try:
                out, err = proc.communicate(timeout=UNLOCK_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise DemoError(f"no password within {UNLOCK_TIMEOUT:.0f} s") from None
        if proc.returncode != 0 or not out:
            text = err.decode(errors="replace").strip()
            raise DemoError(f"plugin-runner exited with {proc.returncode}: {text}")
        return out

    def unlock(self, password: bytes) -> None:
        run([tool("cryptsetup"), "open", "--test-passphrase", str(self.image),
             "--key-file", "-"], stdin=password)  # fmt: skip


def demo(work: Path) -> None:
    """Run the six steps in ``work``; raises DemoError on the first failure."""
    d = Demo(work)
    step(1, "Making the client's keys with mandos-keygen", d.make_keys)
    step(2, "Making a LUKS2 image with a random password", d.make_image)
    step(3, "Encrypting the password into a clients.conf section", d.make_section)
    with contextlib.ExitStack() as stack:
        step(4, "Starting the Mandos server on 127.0.0.1", lambda: stack.enter_context(d.server()))
        password = step(5, "Fetching the password: plugin-runner + mandos-client", d.fetch_password)
        step(6, "Unlocking the LUKS image with that password", lambda: d.unlock(password))
        print(f"    (server on 127.0.0.1:{d.port}, stopping it)", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo in a fresh temporary directory; 0 when the image was unlocked."""
    del argv  # no options
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with tempfile.TemporaryDirectory(prefix="mandos-demo-") as tmp:
            demo(Path(tmp))
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except Interrupted:
        print("demo: interrupted, everything cleaned up", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("SUCCESS: the Mandos server gave the client the password, and it unlocked the image.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
