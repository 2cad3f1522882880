"""mandos-ctl's command line, parsed without side effects: argv -> Invocation.

Rules of this module (observed by running Debian's mandos-ctl 1.8.16):

1. The options, their order, metavars and help texts are the reference's, so ``--help`` and the
   usage text printed before a syntax error are the same byte for byte.
2. Actions run in command-line order, except that every ``--deny`` is moved ahead of
   ``--remove`` (a pending request is denied before its client goes). With no action the
   clients are shown as a table (``--verbose``: all columns) or as JSON (``--dump-json``).
3. The reference's syntax errors and their words are kept ("Options require clients names or
   --all." ...); they end the program with the usage text and exit status 2, as argparse does.
4. Deliberate difference: a duration value that holds no number at all is refused
   (``argument -t/--timeout: 'bogus' is not a duration``); the reference read it as zero, which
   disables the client at once.
5. Nothing here touches a file or the bus: ``--secret`` keeps the path (main reads it).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, NoReturn

from mandos.core.durations import parse_ctl_duration
from mandos.core.errors import ConfigError, CtlUsageError

__all__ = [
    "ALL_KEYWORDS",
    "Action",
    "Approve",
    "Command",
    "DumpJSON",
    "Invocation",
    "IsEnabled",
    "PrintTable",
    "Remove",
    "SetProperty",
    "SetSecret",
    "ShowText",
    "build_parser",
    "parse_args",
]

PROG: Final = "mandos-ctl"

# The 20 properties shown by --verbose and --dump-json, in the reference's order.
ALL_KEYWORDS: Final = (
    "Name", "Enabled", "Timeout", "LastCheckedOK", "Created", "Interval", "Host", "KeyID",
    "Fingerprint", "CheckerRunning", "LastEnabled", "ApprovalPending", "ApprovedByDefault",
    "LastApprovalRequest", "ApprovalDelay", "ApprovalDuration", "Checker", "ExtendedTimeout",
    "Expires", "LastCheckerStatus",
)  # fmt: skip


@dataclass(frozen=True)
class SetProperty:
    """Set one property of each selected client (its D-Bus type is in ``dbus_api.PROPERTIES``)."""

    name: str
    value: bool | int | str


@dataclass(frozen=True)
class SetSecret:
    """Set each selected client's ``Secret`` to the bytes of the file at ``path``."""

    path: str


@dataclass(frozen=True)
class Approve:
    """Call ``Approve(approve)`` on each selected client."""

    approve: bool


@dataclass(frozen=True)
class Remove:
    """Ask the server to remove each selected client."""


@dataclass(frozen=True)
class IsEnabled:
    """End with status 0 if the (first) selected client is enabled, else 1."""


@dataclass(frozen=True)
class DumpJSON:
    """Print the selected clients' 20 properties as JSON."""


@dataclass(frozen=True)
class PrintTable:
    """Print the selected clients as a table; ``verbose`` shows all 20 columns."""

    verbose: bool = False


Action = SetProperty | SetSecret | Approve | Remove | IsEnabled | DumpJSON | PrintTable


@dataclass(frozen=True)
class Command:
    """What to do: ``actions`` in order, on the named clients (none named: all of them)."""

    clients: tuple[str, ...]
    actions: tuple[Action, ...]
    all: bool = False
    debug: bool = False
    check: bool = False


@dataclass(frozen=True)
class ShowText:
    """Print ``text`` to stdout and exit 0 (``--help``, ``--version``)."""

    text: str


Invocation = Command | ShowText


class _Show(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line even when a quoted argument holds a newline (argparse would print it raw).
        raise CtlUsageError(message.replace("\n", "\\n"), self.format_usage())


class _ShowAction(argparse.Action):
    """Like argparse's help/version actions, but raising instead of printing and exiting."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        self.text = str(kwargs.pop("text", ""))
        super().__init__(option_strings, dest, nargs=0, help=str(kwargs.get("help")))

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        raise _Show(self.text or parser.format_help())


def _duration_ms(text: str) -> int:
    try:
        delta = parse_ctl_duration(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return _milliseconds(delta)


def _milliseconds(delta: timedelta) -> int:
    return round(delta / timedelta(milliseconds=1))


def _const(
    parser: argparse._ActionsContainer, flags: Sequence[str], const: Action, hlp: str
) -> None:
    parser.add_argument(
        *flags, dest="commands", action="append_const", default=[], const=const, help=hlp
    )


def _valued(
    parser: argparse._ActionsContainer,
    flags: Sequence[str],
    metavar: str,
    make: Callable[[str], Action],
    hlp: str,
) -> None:
    parser.add_argument(
        *flags, dest="commands", action="append", default=[], metavar=metavar, type=make, help=hlp
    )


def _ms_setter(name: str) -> Callable[[str], Action]:
    def make(text: str) -> Action:
        return SetProperty(name, _duration_ms(text))

    return make


def _add_setters(p: argparse.ArgumentParser) -> None:
    """-c, -t, --extended-timeout, -i, --approve/deny-by-default, --approval-*, -H, in order."""
    _valued(p, ("-c", "--checker"), "COMMAND", lambda s: SetProperty("Checker", s),
            "Set checker command for client")  # fmt: skip
    _valued(p, ("-t", "--timeout"), "TIME", _ms_setter("Timeout"), "Set timeout for client")
    _valued(p, ("--extended-timeout",), "TIME", _ms_setter("ExtendedTimeout"),
            "Set extended timeout for client")  # fmt: skip
    _valued(p, ("-i", "--interval"), "TIME", _ms_setter("Interval"),
            "Set checker interval for client")  # fmt: skip
    g = p.add_mutually_exclusive_group()
    _const(g, ("--approve-by-default",), SetProperty("ApprovedByDefault", True),
           "Set client to be approved by default")  # fmt: skip
    _const(g, ("--deny-by-default",), SetProperty("ApprovedByDefault", False),
           "Set client to be denied by default")  # fmt: skip
    _valued(p, ("--approval-delay",), "TIME", _ms_setter("ApprovalDelay"),
            "Set delay before client approve/deny")  # fmt: skip
    _valued(p, ("--approval-duration",), "TIME", _ms_setter("ApprovalDuration"),
            "Set duration of one client approval")  # fmt: skip
    _valued(p, ("-H", "--host"), "STRING", lambda s: SetProperty("Host", s),
            "Set host for client")  # fmt: skip


def build_parser(version: str) -> argparse.ArgumentParser:
    """The reference's command line (same options, order and help texts)."""
    p = _Parser(prog=PROG, add_help=False)
    p.add_argument("-h", "--help", action=_ShowAction, help="show this help message and exit")
    p.add_argument(
        "--version", action=_ShowAction, text=f"{PROG} {version}\n",
        help="show version number and exit",
    )  # fmt: skip
    p.add_argument("-a", "--all", action="store_true", help="Select all clients")
    p.add_argument("-v", "--verbose", action="store_true", help="Print all fields")
    _const(p, ("-j", "--dump-json"), DumpJSON(), "Dump client data in JSON format")
    g = p.add_mutually_exclusive_group()
    _const(g, ("-e", "--enable"), SetProperty("Enabled", True), "Enable client")
    _const(g, ("-d", "--disable"), SetProperty("Enabled", False), "disable client")
    _const(p, ("-b", "--bump-timeout"), SetProperty("LastCheckedOK", ""),
           "Bump timeout for client")  # fmt: skip
    g = p.add_mutually_exclusive_group()
    _const(g, ("--start-checker",), SetProperty("CheckerRunning", True),
           "Start checker for client")  # fmt: skip
    _const(g, ("--stop-checker",), SetProperty("CheckerRunning", False),
           "Stop checker for client")  # fmt: skip
    _const(p, ("-V", "--is-enabled"), IsEnabled(), "Check if client is enabled")
    _const(p, ("-r", "--remove"), Remove(), "Remove client")
    _add_setters(p)
    _valued(p, ("-s", "--secret"), "FILENAME", SetSecret, "Set password blob (file) for client")
    g = p.add_mutually_exclusive_group()
    _const(g, ("-A", "--approve"), Approve(True), "Approve any current client request")
    _const(g, ("-D", "--deny"), Approve(False), "Deny any current client request")
    p.add_argument("--debug", action="store_true", help="Debug mode (show D-Bus commands)")
    p.add_argument("--check", action="store_true", help="Run self-test")
    p.add_argument("client", nargs="*", help="Client name")
    return p


def _is_change(action: Action) -> bool:
    """An action that needs named clients or --all (everything but the two listings)."""
    return not isinstance(action, DumpJSON | PrintTable)


def _check(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> None:
    actions: list[Action] = ns.commands
    changes = any(_is_change(a) for a in actions)
    dump = any(isinstance(a, DumpJSON) for a in actions)
    if changes and not (ns.client or ns.all):
        parser.error("Options require clients names or --all.")
    if ns.verbose and changes:
        parser.error("--verbose can only be used alone.")
    if dump and (ns.verbose or len(actions) > 1):
        parser.error("--dump-json can only be used alone.")
    if ns.all and not changes:
        parser.error("--all requires an action.")
    if any(isinstance(a, IsEnabled) for a in actions) and len(ns.client) > 1:
        parser.error("--is-enabled requires exactly one client")
    removes = any(isinstance(a, Remove) for a in actions)
    denies = any(a == Approve(False) for a in actions)
    if len(actions) > 1 and removes and not denies:
        parser.error("--remove can only be combined with --deny")


def _ordered(actions: list[Action], verbose: bool) -> tuple[Action, ...]:
    """Every --deny given after --remove moves just before it; no action means the table."""
    if not actions:
        return (PrintTable(verbose=verbose),)
    first_remove = next((i for i, a in enumerate(actions) if isinstance(a, Remove)), None)
    if first_remove is None:
        return tuple(actions)
    before, after = actions[:first_remove], actions[first_remove:]
    moved = [a for a in after if a == Approve(False)]
    rest = [a for a in after if a != Approve(False)]
    return (*before, *moved, *rest)


def parse_args(argv: Sequence[str], version: str) -> Invocation:
    """Parse mandos-ctl's arguments (without the program name).

    Raises:
        CtlUsageError: a syntax error, with the reference's message and usage text.
    """
    parser = build_parser(version)
    try:
        ns = parser.parse_args(list(argv))
    except _Show as show:
        return ShowText(show.text)
    _check(parser, ns)
    return Command(
        clients=tuple(ns.client),
        actions=_ordered(list(ns.commands), ns.verbose),
        all=ns.all,
        debug=ns.debug,
        check=ns.check,
    )
