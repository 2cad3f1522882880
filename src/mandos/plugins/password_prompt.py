"""password-prompt: ask for the passphrase on the console (stdin, echo off; prompt on stderr).

REFERENCE A14: steps aside (fails at once) while Plymouth runs; the prompt names the disk from
CRYPTTAB_SOURCE/cryptsource and CRYPTTAB_NAME/crypttarget; ``--prompt`` replaces it and
``--prefix`` goes first, followed by a space. One line is read, its newline stripped. End of
input on a terminal (Ctrl-D) asks again; on anything else it is an error (EX_NOINPUT).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mandos.core.errors import EX_IOERR, EX_NOINPUT, EX_OK, EX_UNAVAILABLE, UsageError
from mandos.initramfs import argp
from mandos.initramfs.process import (
    StopRequested,
    close_stdout,
    die_by_signal,
    read_line_noecho,
    stop_signals_raise,
    write_all,
)
from mandos.plugins._common import crypttab_names, default_prompt, find_process

PROG = "password-prompt"
PLYMOUTH_PID_FILE = "/run/plymouth/pid"
OPTIONS = (
    argp.Opt("prefix", "p", True, "Prefix shown before the prompt", "PREFIX"),
    argp.Opt("prompt", None, True, "The prompt to show", "PROMPT"),
    argp.Opt("debug", None, False, "Debug mode"),
    argp.Opt("help", "?", False, "Give this help list"),
    argp.Opt("usage", None, False, "Give a short usage message"),
    argp.Opt("version", "V", False, "Print program version"),
)


def plymouth_running(pid_file: str = PLYMOUTH_PID_FILE, proc: str = "/proc") -> bool:
    """True if Plymouth's pid file exists or a ``plymouthd`` process runs."""
    return Path(pid_file).exists() or find_process({"plymouthd"}, proc) is not None


def prompt_text(env: dict[str, str], prefix: str | None, prompt: str | None) -> str:
    """The whole prompt: ``prefix`` and a space, then ``prompt`` or the disk's default prompt."""
    body = prompt if prompt is not None else default_prompt(*crypttab_names(env))
    return f"{prefix} {body}" if prefix is not None else body


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; prints the typed line on stdout and returns a sysexits code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        parsed = argp.parse(OPTIONS, args, stop_at=argp.INFO_OPTIONS)
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return exc.exit_code
    if (request := argp.info_request(parsed)) is not None:
        sys.stdout.write(argp.info_text(request, PROG, "Mandos password-prompt plugin", OPTIONS))
        return EX_OK
    if parsed.positionals:
        sys.stderr.write(f"{PROG}: unexpected argument {parsed.positionals[0]!r}\n")
        return UsageError.exit_code
    opts = dict(parsed.options)
    debug = "debug" in opts
    if plymouth_running():
        if debug:
            sys.stderr.write(f"{PROG}: Plymouth is running; leaving the console to it\n")
        return EX_UNAVAILABLE
    text = prompt_text(dict(os.environ), opts.get("prefix"), opts.get("prompt"))
    try:
        with stop_signals_raise():
            while True:
                line = read_line_noecho(0, 2, text)
                if line is not None:
                    break
                if not os.isatty(0):
                    sys.stderr.write(f"{PROG}: end of input\n")
                    return EX_NOINPUT
                if debug:
                    sys.stderr.write(f"{PROG}: end of input; asking again\n")
            write_all(1, line)
            close_stdout()
    except StopRequested as stop:
        die_by_signal(stop.signum)
    except OSError as exc:
        sys.stderr.write(f"{PROG}: {exc.strerror}\n")
        return EX_IOERR
    return EX_OK


if __name__ == "__main__":
    sys.exit(main())
