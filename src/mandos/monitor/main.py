"""mandos-monitor: watch a Mandos server's clients and events live, and act on them.

Like mandos-monitor(8) of Mandos 1.8.16 it takes no options (``--version`` and ``--help``
excepted) and talks to ``se.recompile.Mandos`` on the system bus.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mandos import __version__

PROG = "mandos-monitor"
USAGE = f"usage: {PROG} [--help] [--version]\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the monitor until the user quits; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-v"]):
        print(f"{PROG} {__version__}")
        return 0
    if args in (["--help"], ["-h"]):
        sys.stdout.write(USAGE + "Keys: q quit, ? help (inside the program).\n")
        return 0
    if args:
        sys.stderr.write(USAGE)
        print(f"{PROG}: error: unrecognized arguments: {' '.join(args)}", file=sys.stderr)
        return 2
    from mandos.monitor.app import MonitorApp  # textual loads only when the UI runs

    MonitorApp().run()
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
