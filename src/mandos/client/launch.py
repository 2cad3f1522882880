"""mandos-client's entry point: start the share worker before the rest of the client loads.

Several --connect mostly mean a threshold, and the share worker (share_worker.py) must import
SLIP-39 (~25 ms) before the second share is in hand. It is forked first thing, while this
process holds little, from a glance at the arguments (connect_options): the child then imports
on the other core while this one reads the options, imports the client and loads the keys.
The glance only decides whether to fork; main() parses the options and reports, as it always
did, and closes a worker it does not need.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn


def connect_options(args: Sequence[str]) -> int:
    """How many --connect options ``args`` seems to hold, by their spelling alone.

    ``--c...`` is --connect's only abbreviation (argp takes any unambiguous prefix) and ``-c``
    its short form; an option's value that happens to look like one is counted too. A wrong
    count costs time (a fork for nothing, or SLIP-39 in-process), never a different answer.
    """
    count = 0
    for arg in args:
        if arg == "--":
            break
        if arg.startswith(("--c", "-c")):
            count += 1
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """mandos-client's main() (client/main.py), the share worker started first if it may help."""
    args = sys.argv[1:] if argv is None else argv
    worker = None
    if connect_options(args) > 1:
        from mandos.client.share_worker import Worker

        worker = Worker()
        worker.start()
    try:
        from mandos.client import main as client

        return client.main(args, worker=worker)
    finally:
        if worker is not None:
            worker.close()  # main() does too, except when it only reports on the options


def entry() -> NoReturn:
    """Console-script entry point."""
    raise SystemExit(main())
