"""Pieces the password plugins share: prompt texts, finding, stopping and restarting a daemon.

Plugins follow the reference's contract (REFERENCE A13, "WRITING PLUGINS"): print the password
on stdout with no trailing newline, exit 0, handle SIGTERM cleanly, report with sysexits codes.
Only the standard library is imported: these programs run in an initramfs. Signals, stdout
and the terminal are in :mod:`mandos.initramfs.process` (plugin-runner uses them too).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path


def crypttab_names(env: Mapping[str, str]) -> tuple[str, str]:
    """(source, target) from CRYPTTAB_SOURCE/cryptsource and CRYPTTAB_NAME/crypttarget."""
    source = env.get("CRYPTTAB_SOURCE") or env.get("cryptsource") or ""
    target = env.get("CRYPTTAB_NAME") or env.get("crypttarget") or ""
    return source, target


def default_prompt(source: str, target: str, tail: str = ": ") -> str:
    """The reference's prompt text for this disk (REFERENCE A14), ending in ``tail``."""
    if not source and not target:
        return f"Enter passphrase to unlock the disk{tail}"
    disk = " ".join(part for part in (source, f"({target})" if target else "") if part)
    return f"Unlocking the disk {disk}\nEnter passphrase{tail}"


def _exe_name(pid_dir: Path) -> str:
    try:
        exe = str((pid_dir / "exe").readlink())
    except OSError:
        return ""
    return Path(exe.removesuffix(" (deleted)")).name


def _comm(pid: int, proc: str) -> str:
    try:
        return (Path(proc) / str(pid) / "comm").read_text().rstrip("\n")
    except OSError:
        return ""


def process_argv(pid: int, proc: str = "/proc") -> list[str]:
    """The argv of a running process, or [] if it is gone or unreadable."""
    try:
        raw = (Path(proc) / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(a) for a in raw.split(b"\0")[:-1]]


def find_process(names: Iterable[str], proc: str = "/proc") -> tuple[int, list[str]] | None:
    """The lowest PID whose executable, argv[0] or comm has one of these names, and its argv.

    The comm name also catches scripts (the kernel names them after the script file).
    """
    wanted = set(names)
    me = os.getpid()
    pids = sorted(int(e.name) for e in Path(proc).iterdir() if e.name.isdigit())
    for pid in pids:
        if pid == me:
            continue
        argv = process_argv(pid, proc)
        first = Path(argv[0]).name if argv else ""
        if first in wanted or _comm(pid, proc) in wanted:
            return pid, argv
        if _exe_name(Path(proc) / str(pid)) in wanted:
            return pid, argv
    return None


def _gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for its parent counts as gone)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return True
    return state == "Z"


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not _gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def kill_and_wait(pid: int, grace: float = 5.0) -> None:
    """SIGTERM ``pid``, give it ``grace`` seconds to go, then SIGKILL it and wait as long again."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, grace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, grace)


def respawn(argv: Sequence[str], prog: str) -> bool:
    """Start a splash daemon again with ``argv``, in its own session (init reaps it).

    False, after one line on stderr naming ``prog``, if it cannot be started.
    """
    try:
        subprocess.Popen(  # noqa: S603 - the daemon's own argv, as it was started before
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        sys.stderr.write(f"{prog}: cannot restart {argv[0]}: {exc.strerror}\n")
        return False
    return True
