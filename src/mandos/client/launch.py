"""mandos-client's entry point: start the share worker before the rest of the client loads.

Several --connect mostly mean a threshold, and the share worker (share_worker.py) must import
SLIP-39 before the second share is in hand; it starts sooner here, after the options (which
import little) and before main.py's imports, than main() could start it. Anything unusual in
the options is left to main(), which parses them again and reports.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn


def main(argv: Sequence[str] | None = None) -> int:
    """mandos-client's main() (client/main.py), the share worker started first if it may help."""
    from mandos.client import args as cli

    args = sys.argv[1:] if argv is None else argv
    worker = None
    try:
        parsed = cli.parse_args(args)
    except Exception:  # main() parses again and reports it, in one line
        parsed = None
    if isinstance(parsed, cli.ClientOptions) and len(parsed.connects) > 1:
        from mandos.client.share_worker import Worker

        worker = Worker()
        worker.start()
    from mandos.client import main as client

    return client.main(args, worker=worker)


def entry() -> NoReturn:
    """Console-script entry point."""
    raise SystemExit(main())
