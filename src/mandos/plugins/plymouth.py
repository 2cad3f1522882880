"""plymouth: ask for the passphrase through a running Plymouth boot splash.

REFERENCE A14: find ``plymouthd`` (by executable or argv[0] in /proc), check it with
``plymouth --ping``, then run ``plymouth ask-for-password --prompt=...`` and pass its answer on.
Plymouth keeps showing a question whose asker was killed, so when this plugin is stopped it
kills plymouthd and starts it again with its old argv (the defaults when that is unknown), then
shows the splash again. ``--plymouth=PATH`` (beyond the reference) names the client program.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from mandos.core.errors import EX_OK, EX_UNAVAILABLE, UsageError
from mandos.initramfs import argp
from mandos.initramfs.process import StopRequested, die_by_signal, stop_signals_raise, write_all
from mandos.plugins._common import (
    crypttab_names,
    default_prompt,
    find_process,
    kill_and_wait,
    respawn,
)

PROG = "plymouth"
PLYMOUTH = "/bin/plymouth"
DEFAULT_PLYMOUTHD_ARGV = ("/sbin/plymouthd", "--mode=boot", "--attach-to-session")
PID_FILES = ("/run/plymouth/pid", "/run/initramfs/plymouth.pid", "/dev/.initramfs/plymouth.pid")
OPTIONS = (
    argp.Opt("prompt", None, True, "The prompt to show", "PROMPT"),
    argp.Opt("debug", None, False, "Debug mode"),
    argp.Opt("plymouth", None, True, "The plymouth client program", "PATH"),
    argp.Opt("help", "?", False, "Give this help list"),
    argp.Opt("usage", None, False, "Give a short usage message"),
    argp.Opt("version", "V", False, "Print program version"),
)


def restart_argv(old_argv: Sequence[str]) -> list[str]:
    """The argv to start plymouthd again: the old one, with a pid file if it had none."""
    argv = list(old_argv) or list(DEFAULT_PLYMOUTHD_ARGV)
    if not any(a.startswith("--pid-file") for a in argv):
        for pid_file in PID_FILES:
            if Path(pid_file).parent.is_dir():
                argv.append(f"--pid-file={pid_file}")
                break
    return argv


def restart_plymouthd(pid: int, old_argv: Sequence[str], plymouth: str) -> None:
    """Kill plymouthd, start it again as it was started, and show the splash again."""
    kill_and_wait(pid)
    if respawn(restart_argv(old_argv), PROG):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([plymouth, "show-splash"], timeout=10, check=False)  # noqa: S603


def ask(plymouth: str, prompt: str) -> tuple[int, bytes]:
    """Run ``plymouth ask-for-password``; (exit status, answer)."""
    proc = subprocess.Popen(  # noqa: S603
        [plymouth, "ask-for-password", f"--prompt={prompt}"], stdout=subprocess.PIPE
    )
    try:
        out, _ = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
    return proc.returncode, out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; prints the password Plymouth returns, or fails if Plymouth is not running."""
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        parsed = argp.parse(OPTIONS, args, stop_at=argp.INFO_OPTIONS)
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return exc.exit_code
    if (request := argp.info_request(parsed)) is not None:
        sys.stdout.write(argp.info_text(request, PROG, "Mandos plymouth plugin", OPTIONS))
        return EX_OK
    opts = dict(parsed.options)
    debug = "debug" in opts
    plymouth = opts.get("plymouth") or PLYMOUTH
    found = find_process({"plymouthd"})
    if found is None:
        if debug:
            sys.stderr.write(f"{PROG}: plymouthd is not running\n")
        return EX_UNAVAILABLE
    pid, old_argv = found
    ping = subprocess.run([plymouth, "--ping"], check=False)  # noqa: S603
    if ping.returncode != 0:
        return EX_UNAVAILABLE
    prompt = opts.get("prompt") or default_prompt(*crypttab_names(os.environ), tail="")
    try:
        with stop_signals_raise():
            code, answer = ask(plymouth, prompt)
    except StopRequested as stop:
        if debug:
            sys.stderr.write(f"{PROG}: stopped; restarting plymouthd (PID {pid})\n")
        restart_plymouthd(pid, old_argv, plymouth)
        die_by_signal(stop.signum)
    if code != 0:
        return EX_UNAVAILABLE
    write_all(1, answer)
    return EX_OK


if __name__ == "__main__":
    sys.exit(main())
