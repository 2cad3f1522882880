"""A small, pure command-line parser with GNU argp's conventions, for the initramfs programs.

Rules (those of argp(3) as the reference's C programs use it):
- ``--name=VALUE`` and ``--name VALUE`` for options that take an argument; a long option may be
  abbreviated to any unambiguous prefix.
- ``-x VALUE``, ``-xVALUE`` and clustered flags (``-ab``) for short options.
- ``--`` ends the options. With ``in_order`` the first non-option also ends them (the rest is a
  command line of its own, as in ``password-agent ... CLIENT --its-options``).
This module does no I/O and imports nothing heavy; argparse is avoided because it exits the
process on errors and cannot express ``in_order``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mandos.core.errors import UsageError


@dataclass(frozen=True, slots=True)
class Opt:
    """One option: its long name, optional short letter, and whether it takes an argument."""

    long: str
    short: str | None = None
    takes_arg: bool = False
    help: str = ""
    metavar: str = "ARG"


@dataclass(frozen=True, slots=True)
class Parsed:
    """Options in the order given, as (long name, value or None), plus positional arguments."""

    options: tuple[tuple[str, str | None], ...]
    positionals: tuple[str, ...]


def _find_long(specs: Sequence[Opt], name: str) -> Opt:
    exact = [o for o in specs if o.long == name]
    if exact:
        return exact[0]
    matches = [o for o in specs if o.long.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"unrecognized option '--{name}'")
    names = ", ".join(f"'--{o.long}'" for o in matches)
    raise UsageError(f"option '--{name}' is ambiguous; possibilities: {names}")


def _find_short(specs: Sequence[Opt], letter: str) -> Opt:
    for o in specs:
        if o.short == letter:
            return o
    raise UsageError(f"invalid option -- '{letter}'")


def parse(specs: Sequence[Opt], argv: Sequence[str], *, in_order: bool = False) -> Parsed:
    """Parse ``argv`` (without the program name); raises UsageError naming the bad option."""
    options: list[tuple[str, str | None]] = []
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positionals.extend(argv[i:])
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            opt = _find_long(specs, name)
            if opt.takes_arg:
                if not eq:
                    if i >= len(argv):
                        raise UsageError(f"option '--{opt.long}' requires an argument")
                    value = argv[i]
                    i += 1
                options.append((opt.long, value))
            elif eq:
                raise UsageError(f"option '--{opt.long}' doesn't allow an argument")
            else:
                options.append((opt.long, None))
        elif arg.startswith("-") and arg != "-":
            j = 1
            while j < len(arg):
                opt = _find_short(specs, arg[j])
                j += 1
                if not opt.takes_arg:
                    options.append((opt.long, None))
                    continue
                if j < len(arg):
                    options.append((opt.long, arg[j:]))
                elif i < len(argv):
                    options.append((opt.long, argv[i]))
                    i += 1
                else:
                    raise UsageError(f"option requires an argument -- '{opt.short}'")
                break
        else:
            positionals.append(arg)
            if in_order:
                positionals.extend(argv[i:])
                break
    return Parsed(tuple(options), tuple(positionals))


def help_text(prog: str, summary: str, specs: Sequence[Opt], args_doc: str = "") -> str:
    """An argp-style --help text: usage line, summary, one line per option."""
    lines = [f"Usage: {prog} [OPTION...]{(' ' + args_doc) if args_doc else ''}", summary, ""]
    for o in specs:
        short = f"-{o.short}, " if o.short else "    "
        arg = f"={o.metavar}" if o.takes_arg else ""
        left = f"  {short}--{o.long}{arg}"
        lines.append(f"{left:<32}{o.help}" if len(left) < 32 else f"{left}\n{'':32}{o.help}")
    return "\n".join(lines) + "\n"


def usage_text(prog: str, specs: Sequence[Opt], args_doc: str = "") -> str:
    """An argp-style --usage text listing every option."""
    parts = [f"[--{o.long}{'=' + o.metavar if o.takes_arg else ''}]" for o in specs]
    return f"Usage: {prog} {' '.join(parts)}{(' ' + args_doc) if args_doc else ''}\n"
