"""Pure parsers of mandos.conf and clients.conf (REFERENCE A2, A3), naming the place of each error.

Rules of this module:

1. Both files are read by the stdlib ``configparser`` exactly as the reference reads them:
   ``[DEFAULT]``, ``key=value`` and ``key: value``, RFC 822 continuation lines, whole-line ``#``
   and ``;`` comments, option names lower-cased, duplicates refused (``strict``).
2. mandos.conf: only ``[DEFAULT]`` is read (other sections are parsed, then ignored, as in the
   reference), values are taken raw, with no ``%`` expansion (the reference reads
   ``defaults()``, and a priority string holds ``%PROFILE_ULTRA``). Unknown keys are ignored,
   and so is ``configdir`` (it only comes from the command line).
3. clients.conf: the client defaults are seeded into ``[DEFAULT]`` as the reference does, so
   ``%(name)s`` start-time expansion (``%%`` is ``%``) also sees them; the default checker
   ``fping -q -- %%(host)s`` becomes ``fping -q -- %(host)s``.
4. ``configparser`` exceptions are translated in one place (:func:`_map_configparser_errors`);
   every error is a :class:`ConfigError` ``"<origin>:<line>: <message>"``. A bad value is
   placed at the line where its key is written in the section, else in ``[DEFAULT]``, else at
   the section header. No message ever quotes a ``secret`` or a line of the file.
5. Differences from the reference, on purpose: a client needs ``key_id`` or ``fingerprint``
   (1.8.16 insisted on ``fingerprint``; since 1.8.17 a section with neither is skipped with a
   warning, which the server asks for with ``skipped``); key IDs and fingerprints must be 64
   and 40 hex digits (the reference kept any string, which then never matched); ``secret`` is
   never kept in ``ClientConfig.raw``; ``key_id`` may hold several key IDs separated by
   whitespace (a client rotating its keys), the first of which is ``ClientConfig.key_id``.
"""

from __future__ import annotations

import binascii
import configparser
import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Final, NoReturn, TypeVar

from mandos.core.config import ClientConfig, ServerSettings
from mandos.core.durations import format_rfc3339, parse_duration
from mandos.core.errors import ConfigError, MandosError
from mandos.core.hostport import parse_host_port
from mandos.core.ini_reader import expand, read_sections
from mandos.core.values import ClientName, Fingerprint, KeyId, Secret

__all__ = [
    "CLIENT_DEFAULTS",
    "DEBUG_LEVELS",
    "parse_boolean",
    "parse_clients_conf",
    "parse_debuglevel",
    "parse_int",
    "parse_server_conf",
]


def _as_text(value: object) -> str:
    """A default as clients.conf would write it (``%`` doubled: the file expands ``%(x)s``)."""
    if isinstance(value, timedelta):
        return format_rfc3339(value)
    return str(value).replace("%", "%%")


#: The client defaults, as clients.conf text (REFERENCE A3), seeded into ``[DEFAULT]``: the
#: :class:`ClientConfig` field defaults that a section may override (not the key or raw).
CLIENT_DEFAULTS: Final[Mapping[str, str]] = {
    f.name: _as_text(f.default)
    for f in dataclasses.fields(ClientConfig)
    if isinstance(f.default, timedelta | bool | str)
}

#: The levels ``--debuglevel`` and ``debuglevel`` accept (any case), as logging names them.
DEBUG_LEVELS: Final = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")

_T = TypeVar("_T")
_KEY_ID_DIGITS: Final = 64
_DEFAULT: Final = "DEFAULT"
_BOOLEANS: Final = configparser.ConfigParser.BOOLEAN_STATES
_SERVER_STRINGS: Final = (
    "interface", "address", "priority", "servicename", "statedir", "audit_log",
)  # fmt: skip
_SERVER_BOOLEANS: Final = (
    "debug", "use_dbus", "use_ipv6", "restore", "foreground", "zeroconf", "metrics_per_client",
)  # fmt: skip


def parse_boolean(text: str) -> bool:
    """ConfigParser's boolean words, any case: 1/yes/true/on and 0/no/false/off."""
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ConfigError(f"{text!r} is not a boolean (1/yes/true/on/0/no/false/off)") from None


def parse_debuglevel(text: str) -> str:
    """A logging level name, any case, as upper case; "" stays "" (meaning WARNING)."""
    if text and text.upper() not in DEBUG_LEVELS:
        raise ConfigError(f"{text!r} is not a debug level ({', '.join(DEBUG_LEVELS)})")
    return text.upper()


def parse_int(text: str, low: int, high: int | None) -> int:
    """A decimal integer from ``low`` to ``high`` (None: no upper bound)."""
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a number") from None
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f" to {high}"
        raise ConfigError(f"{text!r} is out of range ({low}{upper})")
    return value


class _LineIndex:
    """Where each section header and each option is first written (1-based line numbers)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._index: dict[tuple[str, str], int] | None = None

    def _build(self) -> dict[tuple[str, str], int]:
        """Index the text (only when an error needs a line: it costs as much as parsing)."""
        lines: dict[tuple[str, str], int] = {}
        text = self._text
        section = ""
        option_indent: int | None = None  # indent of the option being read, as configparser
        # configparser reads through io.StringIO, which splits lines at "\n" only.
        for lineno, line in enumerate(text.split("\n"), start=1):
            stripped = line.strip()
            if not stripped or stripped[0] in "#;":
                continue  # blank or comment: neither ends an option's value
            indent = len(line) - len(line.lstrip())
            if option_indent is not None and indent > option_indent:
                continue  # a continuation line
            header = configparser.ConfigParser.SECTCRE.match(stripped)
            if header is not None:
                section, option_indent = header.group("header"), None
                lines.setdefault((section, ""), lineno)
                continue
            option = configparser.ConfigParser.OPTCRE.match(stripped)
            if option is not None:
                key = option.group("option").rstrip().lower()
                lines.setdefault((section, key), lineno)
                option_indent = indent
        return lines

    def line(self, section: str, key: str = "") -> int | None:
        """The key's line in the section, else in [DEFAULT], else the section header's."""
        if self._index is None:
            self._index = self._build()
        places = ((section, key), (_DEFAULT, key), (section, ""))
        return next((self._index[p] for p in places if p in self._index), None)


@contextmanager
def _map_configparser_errors(origin: str, index: _LineIndex) -> Iterator[None]:
    """Translate every ``configparser.Error`` into a placed ConfigError (the only such place)."""
    try:
        yield
    except configparser.DuplicateSectionError as exc:
        raise ConfigError(f"section [{exc.section}] appears twice", origin, exc.lineno) from exc
    except configparser.DuplicateOptionError as exc:
        message = f"{exc.option}: set twice in section [{exc.section}]"
        raise ConfigError(message, origin, exc.lineno) from exc
    except configparser.MissingSectionHeaderError as exc:
        # from None: the exception quotes the line, which may hold a secret.
        raise ConfigError("option before any [section] header", origin, exc.lineno) from None
    except configparser.ParsingError as exc:
        lineno = exc.errors[0][0] if exc.errors else None
        message = "not a [section] header, an option, a continuation line or a comment"
        raise ConfigError(message, origin, lineno) from None
    except configparser.InterpolationMissingOptionError as exc:
        message = f"{exc.option}: %({exc.reference})s names no option (write %% for a %)"
        raise ConfigError(message, origin, index.line(exc.section, exc.option)) from None
    except configparser.InterpolationDepthError as exc:
        message = f"{exc.option}: %(name)s expansion nested too deeply"
        raise ConfigError(message, origin, index.line(exc.section, exc.option)) from None
    except configparser.InterpolationError as exc:
        message = f"{exc.option}: bad %-expansion (write %% for a %)"
        raise ConfigError(message, origin, index.line(exc.section, exc.option)) from None


def _read(text: str, origin: str, parser: configparser.ConfigParser) -> _LineIndex:
    index = _LineIndex(text)
    with _map_configparser_errors(origin, index):
        parser.read_string(text, source=origin)
    return index


class _Section:
    """Converts one section's expanded values, placing every error at its key's line."""

    def __init__(self, origin: str, index: _LineIndex, section: str, items: dict[str, str]):
        self.origin = origin
        self.index = index
        self.section = section
        self.items = items

    def fail(self, key: str, message: str) -> NoReturn:
        raise ConfigError(f"{key}: {message}", self.origin, self.index.line(self.section, key))

    def convert(self, key: str, parse: Callable[[str], _T]) -> _T:
        try:
            return parse(self.items[key])
        except ConfigError as exc:
            self.fail(key, str(exc))

    def hex_id(self, key: str, parse: Callable[[str], _T]) -> _T | None:
        raw = self.items.get(key, "").strip()
        return self.convert(key, parse) if raw else None


def parse_server_conf(text: str, origin: str = "mandos.conf") -> ServerSettings:
    """The settings mandos.conf sets (the others None)."""
    parser = configparser.ConfigParser(interpolation=None)
    index = _read(text, origin, parser)
    raw = dict(parser.defaults())
    values = _Section(origin, index, _DEFAULT, raw)
    settings: dict[str, object] = {}
    for key in raw:
        if key in _SERVER_STRINGS:
            settings[key] = raw[key]
        elif key in _SERVER_BOOLEANS:
            settings[key] = values.convert(key, parse_boolean)
        elif key == "debuglevel":
            settings[key] = values.convert(key, parse_debuglevel)
        elif key == "port" and raw[key]:  # "port =" means "the OS picks", as in the reference
            settings[key] = values.convert(key, lambda v: parse_int(v, 0, 65535))
        elif key == "socket" and raw[key]:
            settings[key] = values.convert(key, lambda v: parse_int(v, 0, None))
        elif key == "handshake_timeout":
            settings[key] = values.convert(key, parse_duration)
        elif key == "metrics_address" and raw[key].strip():
            values.convert(key, parse_host_port)  # checked here, kept as written
            settings[key] = raw[key].strip()
    return ServerSettings(**settings)  # type: ignore[arg-type]


def parse_clients_conf(
    text: str,
    origin: str = "clients.conf",
    read_secfile: Callable[[str], bytes] | None = None,
    skipped: Callable[[str], None] | None = None,
) -> tuple[ClientConfig, ...]:
    """Every client section of clients.conf, in file order.

    Args:
        read_secfile: given a ``secfile`` value as written (after ``%`` expansion), expands
            ``$VAR`` then ``~user`` as the reference does, and returns the file's bytes; it may
            raise ``OSError`` or a ``MandosError``. Called only for sections without ``secret``;
            when None, such a section is an error.
        skipped: given, a section with neither ``key_id`` nor ``fingerprint`` is left out and
            this is called with the placed message (as Mandos 1.8.17 warns and ignores it);
            when None, such a section is an error.
    """
    parser = configparser.ConfigParser(defaults=CLIENT_DEFAULTS)
    index = _LineIndex(text)
    # The fast reader declines only texts configparser refuses: configparser names the error.
    sections = read_sections(text, CLIENT_DEFAULTS)
    if sections is None:
        index = _read(text, origin, parser)
        sections = [(name, dict(parser.items(name, raw=True))) for name in parser.sections()]
    clients = []
    fleet = _Fleet()
    with _map_configparser_errors(origin, index):  # expand() raises configparser's errors
        for section, raw in sections:
            items = expand(parser, section, raw)
            try:
                values = _Section(origin, index, section, items)
                clients.append(_client(values, read_secfile, fleet))
            except _NoClientKey as exc:
                if skipped is None:
                    raise
                skipped(f"{exc}; section skipped")
    return tuple(clients)


class _NoClientKey(ConfigError):
    """A section names no key the client could be known by."""


def _client(
    values: _Section, read_secfile: Callable[[str], bytes] | None, fleet: _Fleet
) -> ClientConfig:
    try:
        name = ClientName(values.section)
    except ConfigError as exc:
        raise ConfigError(str(exc), values.origin, values.index.line(values.section)) from None
    key_ids = values.convert("key_id", _key_ids) if "key_id" in values.items else ()
    key_id = key_ids[0] if key_ids else None
    fingerprint = values.hex_id("fingerprint", Fingerprint.parse)
    if key_id is None and fingerprint is None:
        line = values.index.line(values.section)
        raise _NoClientKey(f"client {name}: no key_id or fingerprint", values.origin, line)
    secret = _secret(values, read_secfile)
    raw = fleet.raw_items(values.items)
    return ClientConfig(
        name=name,
        secret=secret,
        key_id=key_id,
        other_key_ids=key_ids[1:],
        fingerprint=fingerprint,
        checker=fleet.text("checker", values.items["checker"]),
        host=values.items["host"],
        raw=raw,
        **fleet.settings(values),
    )


#: Every client of a large clients.conf writes the same few durations: parse each text once.
_client_duration: Final = functools.lru_cache(maxsize=256)(parse_duration)

#: The settings a section converts after its secret, in this order (the first error wins).
_SETTINGS: Final[tuple[tuple[str, Callable[[str], object]], ...]] = (
    ("timeout", _client_duration),
    ("extended_timeout", _client_duration),
    ("interval", _client_duration),
    ("approval_delay", _client_duration),
    ("approval_duration", _client_duration),
    ("approved_by_default", parse_boolean),
    ("enabled", parse_boolean),
)
_SETTING_NAMES: Final = tuple(name for name, _ in _SETTINGS)


class _Fleet:
    """What the sections of one file share: a fleet's sections mostly differ only in their
    name, keys, host and secret. Each combination of settings is converted once, and each
    ``(key, value)`` of ``ClientConfig.raw`` is one tuple for all the sections that write it
    (10,000 clients: ~5 MiB less)."""

    def __init__(self) -> None:
        self._settings: dict[tuple[str, ...], dict[str, Any]] = {}
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}

    def settings(self, values: _Section) -> dict[str, Any]:
        """The section's converted settings (keyword arguments of ClientConfig)."""
        texts = tuple(map(values.items.__getitem__, _SETTING_NAMES))
        try:
            return self._settings[texts]
        except KeyError:
            done = {name: values.convert(name, parse) for name, parse in _SETTINGS}
            self._settings[texts] = done
            return done

    def raw_items(self, items: dict[str, str]) -> tuple[tuple[str, str], ...]:
        """The section's values as written, sorted, without the secret."""
        pairs = self._pairs
        return tuple([pairs.setdefault(p, p) for p in sorted(items.items()) if p[0] != "secret"])

    def text(self, key: str, value: str) -> str:
        """``value``, as the string ``raw_items`` keeps for it (one for all the sections)."""
        return self._pairs.get((key, value), (key, value))[1]


def _key_ids(text: str) -> tuple[KeyId, ...]:
    """``key_id``: one key ID (spaces allowed inside), or several whole ones (key rotation)."""
    words = text.split()
    if len(words) > 1 and all(len(w) == _KEY_ID_DIGITS for w in words):
        return tuple(KeyId.parse(w) for w in words)
    return (KeyId.parse(text),) if words else ()


def _secret(values: _Section, read_secfile: Callable[[str], bytes] | None) -> Secret:
    """The base64 ``secret`` (continuation lines joined, whitespace ignored), else ``secfile``."""
    if "secret" in values.items:
        text = values.items["secret"]
        try:
            # Lenient like the reference's codecs "base64": stray characters are skipped. It
            # reads ASCII text as its bytes, without a copy.
            return Secret(binascii.a2b_base64(text if text.isascii() else text.encode("utf-8")))
        except binascii.Error:
            values.fail("secret", "not valid base64")
    if "secfile" in values.items:
        path = values.items["secfile"]
        if read_secfile is None:
            values.fail("secfile", "secret files cannot be read here")
        try:
            return Secret(read_secfile(path))
        except OSError as exc:
            values.fail("secfile", f"cannot read {path!r}: {exc.strerror or exc}")
        except MandosError as exc:
            values.fail("secfile", f"cannot read {path!r}: {exc}")
    line = values.index.line(values.section)
    raise ConfigError(f"client {values.section}: no secret or secfile", values.origin, line)
