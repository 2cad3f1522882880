"""plugin-runner with our mandos-client (against our server) and password-prompt on a real pty.

The network password wins; password-prompt, which was started alongside on the same terminal,
is terminated and leaves the terminal as it found it (echo back on). Plugins are the shipped
wrappers (mandos.plugins.layout); plugin-runner's stdin and stderr are the pty's slave side
(its controlling terminal), its stdout a pipe.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mandos.plugins.layout import install_plugin_dir
from tests.client import conftest as client_fixtures
from tests.client.conftest import KeySet
from tests.ctl.refserver import our_ctl
from tests.interop.reference import PrivateSystemBus
from tests.plugin_runner.conftest import pid_gone
from tests.server.conftest import TLSKey, client_section
from tests.server.ourserver import RunningServer, our_server

pgp_keys = client_fixtures.pgp_keys
keyset = client_fixtures.keyset

PASSWORD = b"network password \xc3\xa5 \x00\x01 end"
PROMPT = b"Enter passphrase to unlock the disk: "
RUNNER = [sys.executable, "-m", "mandos.plugin_runner.main", "--config-file=/nonexistent"]


def _ctty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@dataclass
class PtyReader:
    """Drains the pty's master side in a thread, so writers never block; keeps what it read."""

    master: int
    seen: bytearray = field(default_factory=bytearray)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: every slave descriptor is closed
                    return
                if not chunk:
                    return
                with self._lock:
                    self.seen += chunk

    def text(self) -> bytes:
        with self._lock:
            return bytes(self.seen)

    def wait_for(self, needle: bytes, limit: float = 90) -> None:
        deadline = time.monotonic() + limit
        while needle not in self.text():
            assert time.monotonic() < deadline, f"{needle!r} never shown; pty: {self.text()!r}"
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


@dataclass(frozen=True)
class Finished:
    """How plugin-runner ended, what it printed, and the terminal before and after."""

    returncode: int
    stdout: bytes
    pty_output: bytes
    attrs_before: list[object]
    attrs_after: list[object]

    def started(self, plugin: str) -> int:
        """The PID plugin-runner's timeline gives for ``plugin``'s start."""
        found = re.search(
            rb"\b" + re.escape(plugin.encode()) + rb":start\((\d+)\)", self.pty_output
        )
        assert found, self.pty_output
        return int(found.group(1))


@pytest.fixture
def plugins(world_dir: Path) -> Path:
    """The shipped wrappers for mandos-client (setuid, so it runs as root) and password-prompt."""
    dest = world_dir / "plugins.d"
    written = install_plugin_dir(
        dest, names=["mandos-client", "password-prompt"], override_dir=None
    )
    assert written == ["mandos-client", "password-prompt"]
    return dest


def _conf(keyset: KeySet, **options: str) -> str:
    tls = TLSKey(keyset.tls_privkey.read_bytes(), keyset.tls_pubkey.read_bytes())
    return client_section("client1", tls, keyset.pgp.encrypt(PASSWORD), **options)


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, int]]:
    master, slave = pty.openpty()
    try:
        yield master, slave
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def _run_runner(
    plugins: Path,
    keyset: KeySet,
    server: RunningServer,
    pty_fds: tuple[int, int],
    *,
    while_prompting: Callable[[PtyReader], None] | None = None,
) -> Finished:
    """Run plugin-runner on the pty; ``while_prompting(reader)`` runs once the prompt is up."""
    master, slave = pty_fds
    client_opts = ",".join([f"--connect={server.connect}", "--retry=1", *keyset.args()])
    argv = [*RUNNER, f"--plugin-dir={plugins}", f"--options-for=mandos-client:{client_opts}"]
    attrs_before = termios.tcgetattr(slave)
    assert attrs_before[3] & termios.ECHO
    reader = PtyReader(master)
    reader.start()
    proc = subprocess.Popen(
        [*argv, "--debug"], stdin=slave, stdout=subprocess.PIPE, stderr=slave,
        start_new_session=True, preexec_fn=_ctty,
    )  # fmt: skip
    try:
        if while_prompting is not None:
            while_prompting(reader)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    attrs_after = termios.tcgetattr(slave)
    os.close(slave)  # only now can the reader see EIO and end
    reader.stop()
    return Finished(proc.returncode, out, reader.text(), attrs_before, attrs_after)


def _assert_clean_win(done: Finished) -> None:
    assert (done.returncode, done.stdout) == (0, PASSWORD), done.pty_output
    assert b"mandos-client:won" in done.pty_output
    assert b"password-prompt:stopped" in done.pty_output  # SIGTERMed by plugin-runner, reaped
    prompt_pid = done.started("password-prompt")
    client_pid = done.started("mandos-client")
    assert pid_gone(prompt_pid)
    assert pid_gone(client_pid)
    assert done.attrs_after == done.attrs_before
    assert b"Traceback" not in done.pty_output


def test_network_password_wins_over_the_prompt(
    plugins: Path, keyset: KeySet, pty_pair: tuple[int, int]
) -> None:
    with our_server(_conf(keyset)) as server:
        done = _run_runner(plugins, keyset, server, pty_pair)
        server.wait_for_log("Sending secret to client1")
    _assert_clean_win(done)


def test_prompt_is_up_when_the_approved_password_arrives(
    plugins: Path, keyset: KeySet, pty_pair: tuple[int, int]
) -> None:
    """The server holds the password until approved; we approve only once the prompt is shown
    and echo is off, so the prompt is surely terminated mid-read."""
    conf = _conf(keyset, approval_delay="PT10M", approved_by_default="False")
    with (
        PrivateSystemBus() as bus,
        our_server(conf, use_dbus=True, env=bus.env) as server,
    ):

        def approve_when_prompting(reader: PtyReader) -> None:
            reader.wait_for(PROMPT)
            assert not termios.tcgetattr(pty_pair[0])[3] & termios.ECHO
            deadline = time.monotonic() + 90
            while '"ApprovalPending": true' not in our_ctl(bus, ["-j", "client1"]).stdout:
                assert time.monotonic() < deadline, server.log_text()
                time.sleep(0.2)
            approved = our_ctl(bus, ["--approve", "client1"])
            assert approved.returncode == 0, approved.stderr

        done = _run_runner(
            plugins, keyset, server, pty_pair, while_prompting=approve_when_prompting
        )
    _assert_clean_win(done)
    assert done.pty_output.count(PROMPT) == 1
