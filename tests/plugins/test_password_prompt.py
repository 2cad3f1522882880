"""password-prompt through a real pseudo-terminal: prompt text, echo off, one line read."""

from __future__ import annotations

import fcntl
import os
import pty
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from mandos.plugins._common import default_prompt
from mandos.plugins.password_prompt import plymouth_running, prompt_text
from tests.ptyio import read_until

PLUGIN = [sys.executable, "-m", "mandos.plugins.password_prompt"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "Enter passphrase to unlock the disk: "),
        ({"CRYPTTAB_SOURCE": "/dev/sda2"}, "Unlocking the disk /dev/sda2\nEnter passphrase: "),
        ({"cryptsource": "/dev/sdb"}, "Unlocking the disk /dev/sdb\nEnter passphrase: "),
        ({"CRYPTTAB_NAME": "root"}, "Unlocking the disk (root)\nEnter passphrase: "),
        ({"crypttarget": "home"}, "Unlocking the disk (home)\nEnter passphrase: "),
        (
            {"CRYPTTAB_SOURCE": "/dev/a", "cryptsource": "/dev/b", "CRYPTTAB_NAME": "x"},
            "Unlocking the disk /dev/a (x)\nEnter passphrase: ",
        ),
    ],
)
def test_prompt_texts(env: dict[str, str], expected: str) -> None:
    assert prompt_text(env, None, None) == expected


def test_prefix_and_prompt_options() -> None:
    assert prompt_text({"CRYPTTAB_NAME": "r"}, "P>", None).startswith("P> Unlocking the disk (r)")
    assert prompt_text({"CRYPTTAB_NAME": "r"}, "P>", "Say it: ") == "P> Say it: "
    assert default_prompt("", "t", tail="") == "Unlocking the disk (t)\nEnter passphrase"


def test_plymouth_detection(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    assert not plymouth_running(str(pid_file))
    pid_file.write_text("1\n")
    assert plymouth_running(str(pid_file))


def _ctty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_through_a_pty() -> None:
    master, slave = pty.openpty()
    env = dict(os.environ, CRYPTTAB_SOURCE="/dev/vda3", CRYPTTAB_NAME="cryptroot")
    proc = subprocess.Popen(
        [*PLUGIN, "--prefix=[mandos]"], stdin=slave, stdout=subprocess.PIPE, stderr=slave,
        env=env, start_new_session=True, preexec_fn=_ctty,
    )  # fmt: skip
    os.close(slave)
    try:
        shown = read_until(master, b"Enter passphrase: ")
        assert shown.replace(b"\r\n", b"\n").endswith(
            b"[mandos] Unlocking the disk /dev/vda3 (cryptroot)\nEnter passphrase: "
        )
        # Echo is off once the prompt is up: the line discipline must not send the text back.
        attrs = termios.tcgetattr(master)
        assert not attrs[3] & termios.ECHO
        os.write(master, b"correct horse\n")
        out, _ = proc.communicate(timeout=30)
        echoed = read_until(master, b"horse", timeout=1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert (proc.returncode, out) == (0, b"correct horse")
    assert b"horse" not in echoed


def test_reads_one_line_only_from_a_pipe() -> None:
    r = subprocess.run(
        PLUGIN, input=b"first\nsecond\n", capture_output=True, timeout=60, check=False
    )
    assert (r.returncode, r.stdout) == (0, b"first")
    assert r.stderr == b"Enter passphrase to unlock the disk: "


def test_end_of_input_on_a_pipe_fails() -> None:
    r = subprocess.run(PLUGIN, input=b"", capture_output=True, timeout=60, check=False)
    assert r.returncode == 66


def test_unknown_option_is_a_usage_error() -> None:
    r = subprocess.run([*PLUGIN, "--bogus"], capture_output=True, timeout=60, check=False)
    assert r.returncode == 64
    assert r.stderr == b"password-prompt: unrecognized option '--bogus'\n"


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["--version"], b"password-prompt (mandos-py) "),
        (["--usage"], b"Usage: password-prompt [-?V] [-p PREFIX] "),
        (["--help", "--bogus"], b"Usage: password-prompt [OPTION...]"),  # argp stops at --help
        (["stray", "-?"], b"Usage: password-prompt [OPTION...]"),
    ],
)
def test_informational_options_answer_at_once(args: list[str], first_line: bytes) -> None:
    r = subprocess.run([*PLUGIN, *args], capture_output=True, timeout=60, check=False)
    assert (r.returncode, r.stderr) == (0, b"")
    assert r.stdout.startswith(first_line)
