"""Run our ``mandos`` server as a real subprocess for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port


@dataclass
class RunningServer:
    """A started server: where it listens and where its files and log are."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    configdir: Path
    statedir: Path
    logfile: Path

    @property
    def connect(self) -> str:
        """The ``--connect`` argument for a client."""
        return f"{self.host}:{self.port}"

    def log_text(self) -> str:
        """Everything the server has logged so far."""
        return self.logfile.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 20) -> str:
        """Wait until ``needle`` appears in the log; return the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            if needle in text:
                return text
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not in server log:\n{self.log_text()}")

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the server."""
        self.process.send_signal(signum)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM the server and wait for it; returns its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _wait_until_listening(server: RunningServer, timeout: float) -> None:
    """Wait for the server's "Listening on port" line (no probe connection to log about)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log_text()}")
        if "Listening on port" in server.log_text():
            return
        time.sleep(0.02)
    raise TimeoutError(f"server not listening after {timeout} s:\n{server.log_text()}")


def _limit_files(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


@contextlib.contextmanager
def our_server(
    clients_conf: str,
    *,
    mandos_conf: str = "",
    extra_args: Sequence[str] = (),
    statedir: Path | None = None,
    host: str = "127.0.0.1",
    startup_timeout: float = 30,
    use_dbus: bool = False,
    env: Mapping[str, str] | None = None,
    max_open_files: int | None = None,
    debug: bool = True,
) -> Iterator[RunningServer]:
    """Start our server in the foreground with ``clients_conf`` on a free loopback port.

    ``use_dbus`` drops ``--no-dbus``; ``env`` is added to the server's environment (such as a
    private bus's ``DBUS_SYSTEM_BUS_ADDRESS``); ``max_open_files`` is its ``ulimit -n``;
    ``debug=False`` logs at the default level (to stderr only where there is no ``/dev/log``).
    """
    with tempfile.TemporaryDirectory(prefix="mandos-test-") as tmp:
        base = Path(tmp)
        configdir = base / "conf"
        configdir.mkdir()
        (configdir / "clients.conf").write_text(clients_conf)
        (configdir / "mandos.conf").write_text(mandos_conf or "[DEFAULT]\n")
        state = statedir or base / "state"
        state.mkdir(exist_ok=True)
        logfile = base / "server.log"
        port = free_port(host)
        argv = [
            sys.executable, "-m", "mandos.server",
            "--foreground", *(("--debug",) if debug else ()), "--no-zeroconf",
            *(() if use_dbus else ("--no-dbus",)),
            f"--address={host}", f"--port={port}",
            f"--configdir={configdir}", f"--statedir={state}",
            *extra_args,
        ]  # fmt: skip
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        with logfile.open("wb") as log:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                preexec_fn=None if max_open_files is None else _limit_files(max_open_files),
            )
        server = RunningServer(process, host, port, configdir, state, logfile)
        try:
            _wait_until_listening(server, startup_timeout)
            yield server
        finally:
            server.stop()
