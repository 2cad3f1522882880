"""mandos-ctl: show and change the clients of a running Mandos server over D-Bus.

Compatible with mandos-ctl(8) of Mandos 1.8.16: the same options, tables, JSON, messages and
exit statuses (0 done; 1 server unreachable, unknown client, a refused call, or --is-enabled
on a disabled client; 2 a command-line error, after the usage text).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from mandos import __version__
from mandos.adapters.dbus_client import MandosBus, Properties
from mandos.core.durations import format_ctl, parse_ctl_duration
from mandos.core.errors import (
    ClientNotFoundError,
    CtlUsageError,
    MandosError,
    ServerUnreachable,
)
from mandos.ctl import args as cli
from mandos.ctl import extensions, render

PROG = "mandos-ctl"
_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"  # the D-Bus specification's default


def _debug_line(line: str) -> None:
    print(line, file=sys.stderr)


def select(all_clients: dict[str, Properties], names: Sequence[str]) -> dict[str, Properties]:
    """The named clients (all of them if none is named), in command-line order, once each.

    Raises:
        ClientNotFoundError: a name is not on the server.
    """
    if not names:
        return all_clients
    by_name = {str(props["Name"]): path for path, props in all_clients.items()}
    chosen: dict[str, Properties] = {}
    for name in names:
        path = by_name.get(name)
        if path is None:
            raise ClientNotFoundError(name)
        chosen[path] = all_clients[path]
    return chosen


async def _run(command: cli.Command, secrets: dict[str, bytes]) -> int:
    bus = await MandosBus.connect(_debug_line if command.debug else None)
    try:
        clients = select(await bus.clients(), command.clients)
        for action in command.actions:
            match action:
                case cli.PrintTable(verbose=verbose):
                    keys = cli.ALL_KEYWORDS if verbose else render.DEFAULT_KEYWORDS
                    print(render.table(clients.values(), keys))
                case cli.DumpJSON():
                    print(render.dump_json(clients.values(), cli.ALL_KEYWORDS))
                case cli.IsEnabled():
                    first = next(iter(clients.values()), None)
                    return 0 if first is not None and first["Enabled"] else 1
                case cli.SetProperty(name=name, value=value):
                    for path in clients:
                        await bus.set_property(path, name, value)
                case cli.SetSecret(path=file):
                    for path in clients:
                        await bus.set_property(path, "Secret", secrets[file])
                case cli.Approve(approve=approve):
                    for path in clients:
                        await bus.approve(path, approve)
                case cli.Remove():
                    for path in clients:
                        await bus.remove_client(path)
    finally:
        bus.close()
    return 0


def not_running_hint(environ: Mapping[str, str] = os.environ) -> str:
    """What to check when the server cannot be reached: the bus itself, or the server on it."""
    address = environ.get("DBUS_SYSTEM_BUS_ADDRESS") or _SYSTEM_BUS
    if address.startswith("unix:path="):
        path = address.removeprefix("unix:path=").split(",")[0].split(";")[0]
        if not Path(path).exists():
            return f"{PROG}: there is no system D-Bus at {path}: is dbus running?"
    return (
        f"{PROG}: the Mandos server is not running, or runs without D-Bus (--no-dbus or"
        " use_dbus = False); check with: systemctl status mandos;"
        " busctl --system status se.recompile.Mandos"
    )


def _self_check() -> int:
    """``--check``: a quick self-test of the pure parts (the reference runs its unit tests)."""
    samples = {"PT5M": "00:05:00", "P1DT2H": "1T02:00:00", "1w": "7T00:00:00", "90s": "00:01:30"}
    bad = [t for t, want in samples.items() if format_ctl(parse_ctl_duration(t)) != want]
    row = {"Name": "c", "Enabled": True, "Timeout": 300000, "LastCheckedOK": ""}
    if render.table([row], render.DEFAULT_KEYWORDS).splitlines()[1] != "c    Yes     00:05:00 " + (
        " " * 21
    ):
        bad.append("table")
    if bad:
        print(f"{PROG}: self-test failed: {', '.join(bad)}", file=sys.stderr)
        return 1
    print("OK")
    return 0


def _read_secrets(command: cli.Command) -> dict[str, bytes]:
    """The --secret files' bytes, read before the bus is touched (as the reference does)."""
    found: dict[str, bytes] = {}
    for action in command.actions:
        if isinstance(action, cli.SetSecret):
            try:
                found[action.path] = Path(action.path).read_bytes()
            except OSError as exc:
                raise CtlUsageError(
                    f"argument -s/--secret: can't open '{action.path}': {exc}",
                    cli.build_parser(__version__).format_usage(),
                ) from None
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run mandos-ctl with ``argv`` (default: sys.argv[1:]); returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if extensions.wanted(args):  # --unknown, --explain: ours, beside the reference's options
        return extensions.main(args)
    try:
        invocation = cli.parse_args(args, __version__)
        if isinstance(invocation, cli.ShowText):
            sys.stdout.write(invocation.text)
            return 0
        if invocation.check:
            return _self_check()
        secrets = _read_secrets(invocation)
        return asyncio.run(_run(invocation, secrets))
    except CtlUsageError as exc:
        sys.stderr.write(exc.usage)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ServerUnreachable as exc:
        print(exc, file=sys.stderr)  # the reference's line, then what to check
        print(not_running_hint(), file=sys.stderr)
        return exc.exit_code
    except MandosError as exc:
        print(exc, file=sys.stderr)  # the reference's words, without a prefix
        return 1


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
