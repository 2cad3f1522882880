"""A small, pure command-line parser with GNU argp's conventions, for the initramfs programs.

Rules (those of argp(3) as the reference's C programs use it):
- ``--name=VALUE`` and ``--name VALUE`` for options that take an argument; a long option may be
  abbreviated to any unambiguous prefix.
- ``-x VALUE``, ``-xVALUE`` and clustered flags (``-ab``) for short options.
- ``--`` ends the options. With ``in_order`` the first non-option also ends them (the rest is a
  command line of its own, as in ``password-agent ... CLIENT --its-options``); without it,
  non-options may come anywhere, as with getopt's permutation.
- An option named in ``stop_at`` (``--help``, ``--version``) ends the parse where it stands, as
  argp acts on those at once: what follows it is not looked at.
- ``--help`` and ``--usage`` texts are laid out as argp lays them out (options at columns 2 and 6,
  their help at column 29, usage wrapped before column 79).
This module does no I/O and imports nothing heavy; argparse is avoided because it exits the
process on errors and cannot express ``in_order``.
"""

from __future__ import annotations

from mandos import __version__
from mandos.core.errors import UsageError
from mandos.core.frozen import Frozen

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:  # collections.abc imports collections (~0.3 MiB of the client's RSS)
    from collections.abc import Collection, Sequence
    from typing import Final

#: The options argp answers itself: pass them as ``stop_at``, then ask ``info_request``.
INFO_OPTIONS: Final = ("help", "usage", "version")
_DOC_COLUMN: Final = 29
_USAGE_WIDTH: Final = 78
_USAGE_INDENT: Final = 12
_MANDATORY_NOTE: Final = (
    "Mandatory or optional arguments to long options are also mandatory or optional\n"
    "for any corresponding short options.\n"
)


class Opt(Frozen):  # not a dataclass: dataclasses costs the client ~1.2 MiB
    """One option: its long name, optional short letter, and whether it takes an argument."""

    __slots__ = ("long", "short", "takes_arg", "help", "metavar")  # noqa: RUF023 - as __init__
    long: str
    short: str | None
    takes_arg: bool
    help: str
    metavar: str

    def __init__(
        self,
        long: str,
        short: str | None = None,
        takes_arg: bool = False,
        help: str = "",
        metavar: str = "ARG",
    ) -> None:
        self._init(long=long, short=short, takes_arg=takes_arg, help=help, metavar=metavar)


class Parsed(Frozen):
    """Options in the order given, as (long name, value or None), plus positional arguments."""

    __slots__ = ("options", "positionals")
    options: tuple[tuple[str, str | None], ...]
    positionals: tuple[str, ...]

    def __init__(
        self, options: tuple[tuple[str, str | None], ...], positionals: tuple[str, ...]
    ) -> None:
        self._init(options=options, positionals=positionals)


def find_long(specs: Sequence[Opt], name: str) -> Opt:
    """The option called ``name`` or uniquely abbreviated to it; UsageError otherwise."""
    exact = [o for o in specs if o.long == name]
    if exact:
        return exact[0]
    matches = [o for o in specs if o.long.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"unrecognized option '--{name}'")
    names = " ".join(f"'--{o.long}'" for o in matches)
    raise UsageError(f"option '--{name}' is ambiguous; possibilities: {names}")


def _find_short(specs: Sequence[Opt], letter: str) -> Opt:
    for o in specs:
        if o.short == letter:
            return o
    raise UsageError(f"invalid option -- '{letter}'")


class _Reader:
    """The state of one parse: the arguments, where we are, and what was found so far."""

    def __init__(self, specs: Sequence[Opt], argv: Sequence[str], stop_at: Collection[str]) -> None:
        self.specs = specs
        self.argv = argv
        self.stop_at = stop_at
        self.i = 0
        self.options: list[tuple[str, str | None]] = []

    def next_value(self, missing: str) -> str:
        if self.i >= len(self.argv):
            raise UsageError(missing)
        self.i += 1
        return self.argv[self.i - 1]

    def add(self, opt: Opt, value: str | None) -> bool:
        """Record an option; True when it ends the parse (``stop_at``)."""
        self.options.append((opt.long, value))
        return opt.long in self.stop_at

    def long_option(self, text: str) -> bool:
        name, eq, value = text.partition("=")
        opt = find_long(self.specs, name)
        if opt.takes_arg:
            if not eq:
                value = self.next_value(f"option '--{opt.long}' requires an argument")
            return self.add(opt, value)
        if eq:
            raise UsageError(f"option '--{opt.long}' doesn't allow an argument")
        return self.add(opt, None)

    def short_options(self, cluster: str) -> bool:
        for j, letter in enumerate(cluster):
            opt = _find_short(self.specs, letter)
            if not opt.takes_arg:
                if self.add(opt, None):
                    return True
                continue
            rest = cluster[j + 1 :]
            value = rest or self.next_value(f"option requires an argument -- '{letter}'")
            return self.add(opt, value)
        return False


def parse(
    specs: Sequence[Opt],
    argv: Sequence[str],
    *,
    in_order: bool = False,
    stop_at: Collection[str] = (),
) -> Parsed:
    """Parse ``argv`` (without the program name); raises UsageError naming the bad option."""
    reader = _Reader(specs, argv, stop_at)
    positionals: list[str] = []
    while reader.i < len(argv):
        arg = argv[reader.i]
        reader.i += 1
        if arg == "--":
            positionals.extend(argv[reader.i :])
            break
        if arg.startswith("--"):
            stop = reader.long_option(arg[2:])
        elif arg.startswith("-") and arg != "-":
            stop = reader.short_options(arg[1:])
        else:
            positionals.append(arg)
            stop = in_order
            if in_order:
                positionals.extend(argv[reader.i :])
        if stop:
            break
    return Parsed(tuple(reader.options), tuple(positionals))


def help_text(prog: str, summary: str, specs: Sequence[Opt], args_doc: str = "") -> str:
    """An argp-style --help text: usage line, summary, one line per option."""
    lines = [f"Usage: {prog} [OPTION...]{(' ' + args_doc) if args_doc else ''}", summary, ""]
    for o in specs:
        head = f"  -{o.short}, " if o.short else "      "
        head += f"--{o.long}={o.metavar}" if o.takes_arg else f"--{o.long}"
        if len(head) < _DOC_COLUMN:
            lines.append(f"{head:<{_DOC_COLUMN}}{o.help}")
        else:
            lines.append(f"{head}\n{'':{_DOC_COLUMN}}{o.help}")
    text = "\n".join(lines) + "\n"
    if any(o.short and o.takes_arg for o in specs):
        text += "\n" + _MANDATORY_NOTE
    return text


def usage_text(prog: str, specs: Sequence[Opt], args_doc: str = "") -> str:
    """An argp-style --usage text: short flags, short options, then every long option."""
    flags = "".join(o.short for o in specs if o.short and not o.takes_arg)
    words = [f"[-{flags}]"] if flags else []
    words += [f"[-{o.short} {o.metavar}]" for o in specs if o.short and o.takes_arg]
    words += [f"[--{o.long}={o.metavar}]" if o.takes_arg else f"[--{o.long}]" for o in specs]
    if args_doc:
        words.append(args_doc)
    lines, line = [], f"Usage: {prog}"
    for word in words:
        if len(line) + 1 + len(word) > _USAGE_WIDTH:
            lines.append(line)
            line = " " * (_USAGE_INDENT - 1)
        line += " " + word
    return "\n".join([*lines, line]) + "\n"


def decimal(text: str) -> int | None:
    """The value of ``text`` if it is ASCII digits only ("²" and "٣" are not), else None."""
    return int(text) if text.isascii() and text.isdigit() else None


def numeric_id(text: str, what: str) -> int:
    """A user or group ID written in digits (0 to 4294967294); UsageError naming ``what``."""
    value = decimal(text)
    if value is None or value > 0xFFFFFFFE:
        raise UsageError(f"{what}: {text!r} is not a numeric ID")
    return value


def info_request(parsed: Parsed) -> str | None:
    """ "help", "usage" or "version" when the parse ended at one of them, else None."""
    if parsed.options and parsed.options[-1][0] in INFO_OPTIONS:
        return parsed.options[-1][0]
    return None


def info_text(
    request: str, prog: str, summary: str, specs: Sequence[Opt], args_doc: str = ""
) -> str:
    """What ``--help``, ``--usage`` or ``--version`` (``request``) prints."""
    if request == "help":
        return help_text(prog, summary, specs, args_doc)
    if request == "usage":
        return usage_text(prog, specs, args_doc)
    return f"{prog} (mandos-py) {__version__}\n"
