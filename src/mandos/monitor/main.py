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
HELP = """
Watch the clients of the running Mandos server (se.recompile.Mandos on the
D-Bus system bus) and its events live, and act on them. No options; see
mandos-monitor(8).

The screen: one row per client, above a log of the server's events.
  NAME: enabled          enabled
  NAME: DISABLED         refused until enabled again
  NAME: A checker has failed! Time until client gets disabled: H:MM:SS
  NAME: Approval in H:MM:SS. (d)eny?    a request waits for approval
  NAME: Denial in H:MM:SS. (a)pprove?   (the same, denied by default)
The log: checker failures, secrets sent, approval requests, refusals with
their reason, unknown clients knocking (address and key ID), clients removed;
the verbose log adds checkers started and succeeded, and new clients.

Keys:
  q, Q           quit              ?, F1, Esc   this help, in the log
  l, D           show/hide log     TAB          switch clients/log
  w, i           wrap/clip log     v            verbose log on/off
  Ctrl-L         redraw            Up/Down, k/j, PgUp/PgDn, b/f: move
On the highlighted client:
  +  enable         -  disable           a  approve       d  deny
  s  start checker  S  stop checker      C  count a successful check now
  R, _, Ctrl-K  remove
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the monitor until the user quits; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-v"]):
        print(f"{PROG} {__version__}")
        return 0
    if args in (["--help"], ["-h"]):
        sys.stdout.write(USAGE + HELP)
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
