"""splashy: ask for the passphrase through a running splashy (REFERENCE A14).

splashy's documented client, ``/sbin/splashy_update "getpass PROMPT"``, asks the daemon and prints
the answer on stdout. If stopped, we kill splashy and start ``splashy boot`` again, as the
reference does. ``--splashy-update=PATH`` and ``--splashy=PATH`` (beyond the reference) name
the programs, for tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from mandos.core.errors import EX_OK, EX_UNAVAILABLE
from mandos.initramfs.process import StopRequested, die_by_signal, stop_signals_raise, write_all
from mandos.plugins._common import crypttab_names, default_prompt, find_process
from mandos.plugins.usplash import restart

PROG = "splashy"
SPLASHY = "/sbin/splashy"
SPLASHY_UPDATE = "/sbin/splashy_update"


def _options(args: Sequence[str]) -> dict[str, str]:
    opts = {"splashy": SPLASHY, "splashy-update": SPLASHY_UPDATE}
    for arg in args:
        name, eq, value = arg.removeprefix("--").partition("=")
        if arg.startswith("--") and eq and name in opts:
            opts[name] = value
        elif arg == "--debug":
            opts["debug"] = "1"
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; prints the password splashy returns, or fails if splashy is not running."""
    opts = _options(sys.argv[1:] if argv is None else argv)
    found = find_process({"splashy"})
    if found is None:
        if "debug" in opts:
            sys.stderr.write(f"{PROG}: splashy is not running\n")
        return EX_UNAVAILABLE
    pid, _argv = found
    prompt = default_prompt(*crypttab_names(os.environ)).replace("\n", " ")
    proc: subprocess.Popen[bytes] | None = None
    try:
        with stop_signals_raise():
            proc = subprocess.Popen(  # noqa: S603
                [opts["splashy-update"], f"getpass {prompt}"], stdout=subprocess.PIPE
            )
            answer, _ = proc.communicate()
    except StopRequested as stop:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait()
        restart(pid, [opts["splashy"], "boot"], PROG)
        die_by_signal(stop.signum)
    except OSError as exc:
        sys.stderr.write(f"{PROG}: cannot run {opts['splashy-update']}: {exc.strerror}\n")
        return EX_UNAVAILABLE
    if proc.returncode != 0:
        return EX_UNAVAILABLE
    write_all(1, answer)
    return EX_OK


if __name__ == "__main__":
    sys.exit(main())
