"""race() in-process with real plugin processes: grace period, SIGKILL, and the console fallback."""

from __future__ import annotations

import fcntl
import os
import pty
import subprocess
import sys
import termios
import time
from pathlib import Path

from mandos.plugin_runner.plan import Candidate, Launch, RunnerConfig, plan_launches
from mandos.plugin_runner.run import RaceSettings, race
from tests.plugin_runner.conftest import MakePlugin, pid_gone
from tests.ptyio import read_until


def launches_for(plugin_dir: Path) -> list[Launch]:
    cands = []
    for p in plugin_dir.iterdir():
        st = p.stat()
        cands.append(Candidate(p.name, str(p), st.st_mode, st.st_uid, st.st_gid))
    return plan_launches(cands, RunnerConfig(userid=os.getuid(), groupid=os.getgid()))


def test_plugin_ignoring_sigterm_is_killed(
    make_plugin: MakePlugin, world_dir: Path, plugin_dir: Path
) -> None:
    make_plugin("stubborn", f"trap '' TERM; echo $$ > {world_dir}/s.pid; while :; do sleep 1; done")
    make_plugin("win", f"while [ ! -s {world_dir}/s.pid ]; do sleep 0.05; done; printf ok")
    t0 = time.monotonic()
    outcome = race(launches_for(plugin_dir), os.environ, RaceSettings(term_grace=0.5))
    assert (outcome.winner, outcome.output) == ("win", b"ok")
    assert "stubborn:killed" in " ".join(e for _, e in outcome.timeline)
    assert time.monotonic() - t0 < 60
    assert pid_gone(int((world_dir / "s.pid").read_text()))


def test_all_fail_gives_no_winner(make_plugin: MakePlugin, plugin_dir: Path) -> None:
    make_plugin("a", "exit 1")
    make_plugin("b", "printf x; exit 2")
    outcome = race(launches_for(plugin_dir), os.environ)
    assert (outcome.winner, outcome.output, outcome.signal) == (None, b"", None)


def test_unstartable_plugin_is_skipped(plugin_dir: Path, make_plugin: MakePlugin) -> None:
    bad = plugin_dir / "garbage"
    bad.write_bytes(b"\x7fELF not really")
    bad.chmod(0o755)
    make_plugin("good", "printf yes")
    outcome = race(launches_for(plugin_dir), os.environ)
    assert outcome.output == b"yes"


def _make_ctty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_console_fallback_reads_from_the_terminal_with_echo_off(
    plugin_dir: Path, make_plugin: MakePlugin
) -> None:
    make_plugin("fails", "exit 1")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mandos.plugin_runner.main", "--config-file=/nonexistent",
         f"--plugin-dir={plugin_dir}"],
        stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=_make_ctty,
    )  # fmt: skip
    os.close(slave)
    try:
        assert b"Password: " in read_until(master, b"Password: ")
        os.write(master, b"typed secret\n")
        out, _ = proc.communicate(timeout=30)
        echoed = read_until(master, b"\n", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert (proc.returncode, out) == (0, b"typed secret")
    assert b"typed" not in echoed
