"""plugin-runner: the crypttab keyscript. Run all password plugins; print the first password."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from mandos.core.errors import EX_IOERR, EX_OK, EX_UNAVAILABLE, MandosError, UsageError
from mandos.initramfs import argp
from mandos.initramfs.process import die_by_signal, read_line_noecho, stop_signals_raise, write_all
from mandos.plugin_runner.plan import (
    OPTIONS,
    Candidate,
    RunnerConfig,
    build_config,
    config_file_from_argv,
    plan_launches,
    skip_reason,
    split_config_text,
)
from mandos.plugin_runner.run import RaceSettings, format_timeline, race

PROG = "plugin-runner"
SUMMARY = "Mandos plugin runner -- Run Mandos plugins"


def _err(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")


def load_config(argv: Sequence[str]) -> RunnerConfig:
    """The config file's arguments (if the file exists), then the command line."""
    path = config_file_from_argv(argv)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        _err(f"cannot read {path}: {exc.strerror}; ignoring it")
        text = ""
    file_args = split_config_text(text)
    try:
        build_config(file_args, [])
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None
    return build_config(file_args, argv)


def scan_plugins(config: RunnerConfig, debug: bool) -> list[Candidate]:
    """Every entry of the plugin directory with its stat(); raises OSError if unreadable."""
    found: list[Candidate] = []
    with os.scandir(config.plugin_dir) as it:
        for entry in it:
            try:
                st = entry.stat()
            except OSError as exc:
                _err(f"cannot stat plugin {entry.name}: {exc.strerror}")
                continue
            cand = Candidate(entry.name, entry.path, st.st_mode, st.st_uid, st.st_gid)
            reason = skip_reason(cand, config.disabled)
            if debug and reason is not None:
                _err(f"Ignoring plugin {entry.name}: {reason}")
            found.append(cand)
    return found


def fallback_prompt() -> bytes | None:
    """getpass(3)-like: "Password: " on /dev/tty with echo off; None if there is no terminal."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with stop_signals_raise():
            return read_line_noecho(fd, fd, "Password: ")
    finally:
        os.close(fd)


def run(config: RunnerConfig) -> int:
    """Race the plugins; print the winner's output, else the fallback prompt's answer."""
    debug = config.debug

    def say(msg: str) -> None:
        if debug:
            _err(msg)

    try:
        launches = plan_launches(scan_plugins(config, debug), config)
    except OSError as exc:
        _err(f"cannot read plugin directory {config.plugin_dir}: {exc.strerror}")
        launches = []
    outcome = race(launches, os.environ, RaceSettings(), say)
    if debug:
        _err(f"timeline: {format_timeline(outcome.timeline) or '(no plugins)'}")
    if outcome.signal is not None:
        die_by_signal(outcome.signal)
    password = outcome.output if outcome.winner is not None else None
    if password is None:
        say("No plugin succeeded; asking on the console")
        password = fallback_prompt()
        if password is None:
            _err("no plugin succeeded and there is no terminal to ask on")
            return EX_UNAVAILABLE
    try:
        write_all(sys.stdout.fileno(), password)
    except OSError as exc:
        _err(f"cannot write the password: {exc.strerror}")
        return EX_IOERR
    return EX_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse options and config file, then run; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        config = load_config(args)
        if config.action != "run":
            sys.stdout.write(argp.info_text(config.action, PROG, SUMMARY, OPTIONS))
            return EX_OK
        return run(config)
    except MandosError as exc:
        _err(str(exc))
        return exc.exit_code
    except Exception as exc:
        if "--debug" in args:
            raise
        _err(f"internal error: {exc!r}")
        return 70


def entry() -> NoReturn:
    """Console-script entry."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
