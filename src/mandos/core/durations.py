"""Durations as clients.conf and mandos-ctl write them: parse and format, round-trip exact.

Rules of this module (observed by running Mandos 1.8.16's own functions):

1. ``parse_duration`` first tries RFC 3339 Appendix A durations, as the reference reads them:
   ``PnW`` alone, or ``P[nY][nM][nD][T[nH][nM][nS]]`` with the units in that order and
   adjacent (``P1Y1D`` and ``PT1H1S`` are refused, as the grammar says). Y counts as 52 weeks
   and M (before the ``T``) as 4 weeks. Quirk kept: the reference accepts a ``T`` part only
   right after ``P`` or after a ``D`` (``P1YT1H`` and ``P1MT1S`` are refused). Upper case only,
   no sign, **integers only** (the reference refuses ``PT0.5S``), and ``P``, ``PT``, ``P1DT``
   are not durations.
2. If that fails, the pre-1.6.1 syntax: whitespace-separated ``<int><s|m|h|d|w>`` tokens, summed.
3. Deliberate differences from the reference, all of them refusals of nonsense it accepted:
   the empty (or all-blank) string is refused (the reference read it as zero, which disables a
   client at once); digits are ASCII only; legacy tokens take no sign or ``_`` (the reference's
   ``int()`` took ``-5m``, giving a negative timeout).
4. ``format_rfc3339`` writes whole seconds only (the only values the parser can read back):
   ``PnW`` for whole weeks, else ``PnD`` plus ``T..H..M..S`` without zero fields, ``PT0S``
   for zero. ``parse_duration(format_rfc3339(td)) == td`` for every such ``td``.
5. mandos-ctl reads its option values more loosely (``parse_ctl_duration``) and shows them as
   ``[<days>T]HH:MM:SS`` (``format_ctl``, sub-seconds truncated, as mandos-ctl does).
"""

from __future__ import annotations

import functools
import re
from datetime import timedelta
from typing import Final

from mandos.core.errors import ConfigError

__all__ = ["format_ctl", "format_rfc3339", "parse_ctl_duration", "parse_duration"]

_RFC3339: Final = re.compile(
    r"P(?:(?P<W>[0-9]+)W"
    r"|(?:(?P<Y>[0-9]+)Y)?(?:(?P<Mo>[0-9]+)M)?(?:(?P<D>[0-9]+)D)?"
    r"(?P<T>T(?:(?P<H>[0-9]+)H)?(?:(?P<Mi>[0-9]+)M)?(?:(?P<S>[0-9]+)S)?)?)"
)

_LEGACY_TOKEN: Final = re.compile(r"([0-9]+)([smhdw])")
_CTL_TOKEN: Final = re.compile(r"([0-9]+)([smhdw]?)")

_UNIT: Final[dict[str, timedelta]] = {
    "Y": timedelta(weeks=52),
    "Mo": timedelta(weeks=4),
    "W": timedelta(weeks=1),
    "D": timedelta(days=1),
    "H": timedelta(hours=1),
    "Mi": timedelta(minutes=1),
    "S": timedelta(seconds=1),
}
_LEGACY_UNIT: Final[dict[str, timedelta]] = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "": timedelta(milliseconds=1),  # mandos-ctl only: a bare number is milliseconds
}


def _not_a_duration(text: str) -> ConfigError:
    return ConfigError(f"{text!r} is not a duration")


def _chain_ok(fields: dict[str, str | None], chain: tuple[str, str, str]) -> bool:
    """Present units of a chain must be adjacent: no gap between the first and the last."""
    present = [fields[name] is not None for name in chain]
    return not (present[0] and present[2] and not present[1])


def _parse_rfc3339(text: str) -> timedelta | None:
    """The duration, or None when ``text`` is not an RFC 3339 duration the reference reads."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    fields = match.groupdict()
    date = ("Y", "Mo", "D")
    time = ("H", "Mi", "S")
    if fields["W"] is None:
        has_date = any(fields[name] is not None for name in date)
        has_time = any(fields[name] is not None for name in time)
        if fields["T"] is not None and not has_time:
            return None  # "PT", "P1DT"
        if not (has_date or has_time):
            return None  # "P"
        if has_time and has_date and fields["D"] is None:
            return None  # reference quirk: "P1YT1H" is refused
        if not (_chain_ok(fields, date) and _chain_ok(fields, time)):
            return None  # "P1Y1D", "PT1H1S"
    total = timedelta(0)
    for name, unit in _UNIT.items():
        count = fields[name]
        if count is not None:
            total += int(count) * unit
    return total


def _sum_tokens(tokens: list[tuple[str, str]]) -> timedelta:
    total = timedelta(0)
    for count, suffix in tokens:
        total += int(count) * _LEGACY_UNIT[suffix]
    return total


@functools.lru_cache(maxsize=256)  # pure; a big clients.conf repeats the same few values
def parse_duration(text: str) -> timedelta:
    """Parse a clients.conf time value: RFC 3339, else the pre-1.6.1 ``1d 2h`` syntax.

    Raises:
        ConfigError: ``'<text>' is not a duration`` (no place; the caller adds it).
    """
    try:
        rfc = _parse_rfc3339(text)
        if rfc is not None:
            return rfc
        words = text.split()
        matches = [_LEGACY_TOKEN.fullmatch(word) for word in words]
        if not words or None in matches:
            raise _not_a_duration(text)
        return _sum_tokens([(m.group(1), m.group(2)) for m in matches if m is not None])
    except (OverflowError, ValueError):  # huge numbers: timedelta range, int digit limit
        raise _not_a_duration(text) from None


def parse_ctl_duration(text: str) -> timedelta:
    """Parse a mandos-ctl option value: RFC 3339, else any ``<int>[smhdw]`` runs in any order.

    As in mandos-ctl, a bare number is milliseconds and other characters are skipped; unlike
    it, a value with no number at all is refused instead of being read as zero.

    Raises:
        ConfigError: ``'<text>' is not a duration``.
    """
    try:
        rfc = _parse_rfc3339(text)
        if rfc is not None:
            return rfc
        tokens = _CTL_TOKEN.findall(text)
        if not tokens:
            raise _not_a_duration(text)
        return _sum_tokens(tokens)
    except (OverflowError, ValueError):  # huge numbers: timedelta range, int digit limit
        raise _not_a_duration(text) from None


def format_rfc3339(td: timedelta) -> str:
    """The canonical RFC 3339 form of a non-negative whole-second duration (``PT5M``, ``P2W``).

    Raises:
        ValueError: ``td`` is negative or not whole seconds (a caller's bug: no such value
            can be read back by :func:`parse_duration`).
    """
    if td < timedelta(0) or td.microseconds:
        raise ValueError(f"{td!r} is not a non-negative whole number of seconds")
    days, seconds = td.days, td.seconds
    if seconds == 0 and days and days % 7 == 0:
        return f"P{days // 7}W"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    date = f"{days}D" if days else ""
    fields = [(n, unit) for n, unit in ((hours, "H"), (minutes, "M"), (secs, "S"))]
    nonzero = [i for i, (n, _) in enumerate(fields) if n]
    # Units must be adjacent ("PT1H0M1S", not "PT1H1S"), so keep zeros between the ends.
    kept = fields[nonzero[0] : nonzero[-1] + 1] if nonzero else []
    time = "".join(f"{n}{unit}" for n, unit in kept)
    if not date and not time:
        return "PT0S"
    return f"P{date}" + (f"T{time}" if time else "")


def format_ctl(td: timedelta) -> str:
    """mandos-ctl's table form ``[<days>T]HH:MM:SS`` (``00:05:00``, ``1T02:00:00``)."""
    hours, rest = divmod(td.seconds, 3600)
    minutes, secs = divmod(rest, 60)
    days = f"{td.days}T" if td.days else ""
    return f"{days}{hours:02}:{minutes:02}:{secs:02}"
