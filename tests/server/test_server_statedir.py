"""The state directory belongs to the user the server drops to (REFERENCE: root -> _mandos).

The server runs as root in a private mount namespace whose /etc/passwd has a ``_mandos`` user
(uid/gid 65534), so the privilege drop really happens without touching the machine's users.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mandos.core.errors import StateFileError
from tests.ports import free_port
from tests.server.conftest import TLSKey, client_section, fetch

SECRET = b"state dir"
UID = 65534

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="needs root to drop privileges")


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory the dropped user can traverse (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="mandos-statedir-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _command(base: Path, statedir: Path, port: int, debug: bool, foreground: bool) -> list[str]:
    passwd = base / "passwd"
    passwd.write_text(Path("/etc/passwd").read_text() + f"_mandos:x:{UID}:{UID}::/:/bin/false\n")
    server = [sys.executable, "-m", "mandos.server",
              *(["--foreground"] if foreground else []), *(["--debug"] if debug else []),
              "--no-dbus", "--no-zeroconf",
              "--address=127.0.0.1", f"--port={port}",
              f"--configdir={base / 'conf'}", f"--statedir={statedir}"]  # fmt: skip
    script = 'mount --bind "$0" /etc/passwd && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(passwd),
            *server]  # fmt: skip


@contextlib.contextmanager
def _server(
    base: Path, statedir: Path, key: TLSKey, *, debug: bool = True, foreground: bool = True
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    (base / "conf").mkdir(exist_ok=True)
    (base / "conf" / "clients.conf").write_text(client_section("c1", key, SECRET))
    port = free_port()
    with (base / "log").open("w") as log:
        process = subprocess.Popen(
            _command(base, statedir, port, debug, foreground),
            stderr=log,
            text=True,
            start_new_session=True,
        )
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=20)


def _wait_for(predicate: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_missing_statedir_is_created_for_the_dropped_user(base: Path, tls_key: TLSKey) -> None:
    statedir = base / "state"
    log = base / "log"
    with _server(base, statedir, tls_key) as (process, port):
        _wait_for(lambda: "Listening on port" in log.read_text() or process.poll() is not None)
        assert fetch("127.0.0.1", port, tls_key, receive_timeout=30) == SECRET
        _wait_for((statedir / "clients.json").exists)
        process.terminate()
        process.wait(timeout=20)
    assert "Permission denied" not in log.read_text()
    info = statedir.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (UID, UID, 0o700)
    assert (statedir / "clients.json").stat().st_uid == UID


@pytest.mark.parametrize("foreground", [True, False])
def test_statedir_the_dropped_user_cannot_write_is_refused(
    base: Path, tls_key: TLSKey, foreground: bool
) -> None:
    statedir = base / "state"
    statedir.mkdir(mode=0o700)  # root's, as a release before this fix left it
    with _server(base, statedir, tls_key, debug=False, foreground=foreground) as (process, _):
        process.wait(timeout=30)  # in daemon mode too: refused before detaching
    stderr = (base / "log").read_text()
    assert process.returncode == StateFileError.exit_code, stderr
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("mandos:")]
    assert str(statedir) in line
    assert "_mandos" in line
