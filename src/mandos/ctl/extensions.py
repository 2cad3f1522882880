"""mandos-ctl's own options beyond the reference: ``--unknown`` and ``--explain NAME``.

They are parsed apart from the reference's command line (so that ``--help`` and every message
of the reference stay the same byte for byte) and talk to our own D-Bus interface on ``/``
(``org.mandos_py.Server1``); a reference server does not have it, and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, cast

from mandos.adapters.dbus_api import EXTENSION_INTERFACE, SERVER_PATH
from mandos.adapters.dbus_client import MandosBus
from mandos.core.errors import MandosError
from mandos.core.errors import ServerCallFailed as CallFailed

INTERFACE: Final = EXTENSION_INTERFACE
OPTIONS: Final = ("--unknown", "--explain")


@dataclass(frozen=True)
class Extension:
    """``--unknown`` (``explain`` None) or ``--explain NAME``; ``json`` for machines."""

    explain: str | None
    json: bool = False


class ExtensionBus(MandosBus):
    """The reference's bus client plus our interface's two calls."""

    async def unknown_keys(self) -> list[list[object]]:
        """(key ID, address, first seen, last seen, count) rows, newest first."""
        (rows,) = await self._call(SERVER_PATH, INTERFACE, "UnknownKeys")
        return [list(r) for r in rows]

    async def explain(self, name: str) -> tuple[str, list[str]]:
        """The server's verdict on client ``name`` and its reasons."""
        ((verdict, reasons),) = await self._call(SERVER_PATH, INTERFACE, "Explain", "s", [name])
        return str(verdict), [str(r) for r in reasons]


def wanted(argv: Sequence[str]) -> bool:
    """Whether ``argv`` asks for one of our options (then :func:`parse` handles it all)."""
    return any(a in OPTIONS or a.startswith("--explain=") for a in argv)


def build_parser() -> argparse.ArgumentParser:
    """The parser of our options (``mandos-ctl --unknown``, ``mandos-ctl --explain NAME``)."""
    parser = argparse.ArgumentParser(
        prog="mandos-ctl",
        description="Extensions of mandos-py (not in the reference mandos-ctl).",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--unknown", action="store_true", help="list key IDs that asked but match no client"
    )
    group.add_argument(
        "--explain", metavar="NAME", help="say whether client NAME would get its secret now"
    )
    parser.add_argument("-j", "--dump-json", dest="json", action="store_true", help="as JSON")
    return parser


def parse(argv: Sequence[str]) -> Extension:
    """Parse our options (argparse exits 2 with a usage line on a mistake)."""
    ns = build_parser().parse_args(list(argv))
    return Extension(explain=ns.explain, json=ns.json)


def render_unknown(rows: list[list[object]]) -> str:
    """A table of unknown keys (or a line saying there are none)."""
    if not rows:
        return "No unknown key IDs have asked since the server started."
    head = ("Key ID", "Address", "First seen", "Last seen", "Count")
    table = [head, *[tuple(str(v) for v in row) for row in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    return "\n".join(
        " ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    )


def render_explanation(name: str, verdict: str, reasons: list[str]) -> str:
    """``NAME would get its secret: VERDICT`` and one indented line per reason."""
    lines = [f"{name}: would get its secret now: {verdict}"]
    lines += [f"  - {reason}" for reason in reasons]
    return "\n".join(lines)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


async def _run(ext: Extension) -> int:
    bus = cast(ExtensionBus, await ExtensionBus.connect())
    try:
        try:
            if ext.explain is None:
                rows = await bus.unknown_keys()
                keys = ("key_id", "address", "first_seen", "last_seen", "count")
                out = (
                    json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=2)
                    if ext.json
                    else render_unknown(rows)
                )
                _say(out)
                return 0
            verdict, reasons = await bus.explain(ext.explain)
        except CallFailed as exc:
            if "UnknownMethod" in str(exc):
                raise CallFailed("the server does not offer mandos-py's extensions") from None
            if "UnknownObject" in str(exc):
                raise MandosError(f"Client not found on server: {ext.explain!r}") from None
            raise
        if ext.json:
            _say(json.dumps({"name": ext.explain, "verdict": verdict, "reasons": reasons}))
        else:
            _say(render_explanation(ext.explain, verdict, reasons))
        return 0 if verdict == "yes" else 1
    finally:
        bus.close()


def run(ext: Extension) -> int:
    """Carry out ``ext``: 0, or 1 when --explain's verdict is not a plain yes."""
    return asyncio.run(_run(ext))


def main(argv: Sequence[str]) -> int:
    """Parse and run (errors as the reference's: the message alone on stderr, status 1)."""
    try:
        return run(parse(argv))
    except MandosError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
