"""Share sections from our mandos-keygen --threshold, and our mandos-client run for a while."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import time
from pathlib import Path

from mandos.keygen import main as keygen
from tests.e2e.conftest import PASSWORD, OurKeys

CLIENT = str(Path(sys.executable).parent / "mandos-client")


def make_share_sections(keys: OurKeys, out: Path, k: int = 2, n: int = 3) -> list[str]:
    """The N clients.conf sections (share 1..N of PASSWORD, threshold K) for ``keys``."""
    passfile = out.with_suffix(".pw")
    passfile.write_bytes(PASSWORD)
    argv = ["--dir", str(keys.keydir), "--name", "client1", "--passfile", str(passfile), "-S",
            "--threshold", str(k), "--shares", str(n), "--output-dir", str(out)]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        assert keygen.main(argv) == 0
    return [(out / f"client1.share-{i}.conf").read_text() for i in range(1, n + 1)]


def conf(section: str, **options: str) -> str:
    """A share section with ``key = value`` lines appended (a checker that always succeeds)."""
    options.setdefault("checker", "true")
    return section.rstrip("\n") + "\n" + "".join(f"{k} = {v}\n" for k, v in options.items())


def run_client(
    keys: OurKeys, hooks: Path, *args: str, for_at_most: float = 15
) -> subprocess.CompletedProcess[bytes]:
    """Our mandos-client (no interfaces, no hooks) until it exits or, after ``for_at_most``
    seconds, is sent SIGTERM; returncode is then -15 (it re-raises the signal)."""
    hooks.mkdir(exist_ok=True)
    argv = [CLIENT, *keys.client_args(), "--interface=none", f"--network-hook-dir={hooks}",
            "--retry=1", "--debug", *args]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=for_at_most)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def wait_until(predicate: object, timeout: float = 20) -> None:
    """Poll ``predicate()`` until true."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
