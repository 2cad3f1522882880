"""Plugin executables laid out as the reference ships them, and plugin-runner running them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mandos.plugins.layout import PLUGINS, install_helper_dir, install_plugin_dir


def test_install_plugin_dir_with_overrides(world_dir: Path) -> None:
    etc = world_dir / "etc-plugins.d"
    etc.mkdir()
    (etc / "password-prompt").write_text("#!/bin/sh\nprintf mine\n")
    (etc / "extra").write_text("#!/bin/sh\n")
    (etc / "skipped~").write_text("")
    dest = world_dir / "plugins.d"
    written = install_plugin_dir(dest, override_dir=etc)
    assert {"password-prompt", "askpass-fifo", "plymouth", "usplash", "splashy", "extra"} <= set(
        written
    )
    assert "skipped~" not in written
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    assert (dest / "password-prompt").read_text() == "#!/bin/sh\nprintf mine\n"
    for name in ("askpass-fifo", "plymouth", "usplash", "splashy"):
        assert stat.S_IMODE((dest / name).stat().st_mode) == 0o4755
    assert "mandos.plugins.askpass_fifo" in (dest / "askpass-fifo").read_text()
    helpers = install_helper_dir(world_dir / "helpers", override_dir=world_dir / "none")
    assert helpers == []
    assert set(PLUGINS) >= {"mandos-client", "password-prompt"}


@pytest.mark.skipif(os.geteuid() != 0, reason="the layout's setuid emulation needs root")
def test_runner_with_the_installed_plugins(world_dir: Path) -> None:
    """The shipped layout (0700 plugins.d, setuid wrappers) under plugin-runner; options reach
    askpass-fifo through --options-for; the other plugins fail fast (no splash, no stdin)."""
    dest = world_dir / "plugins.d"
    install_plugin_dir(dest, override_dir=None)
    fifo = world_dir / "passfifo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mandos.plugin_runner.main", "--config-file=/nonexistent",
         f"--plugin-dir={dest}", f"--options-for=askpass-fifo:--fifo={fifo},--debug", "--debug"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not fifo.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        fd = os.open(fifo, os.O_WRONLY)
        os.write(fd, b"from the fifo")
        os.close(fd)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out) == (0, b"from the fifo"), err
    assert b"askpass-fifo:won" in err
    assert fifo.stat().st_uid == 0  # the setuid wrapper ran as its owner, root
