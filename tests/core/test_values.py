"""Value types: a Secret never shows its bytes; key IDs and fingerprints normalise once."""

from __future__ import annotations

import logging
import string
import traceback
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mandos.core.errors import ConfigError, MandosError
from mandos.core.values import EMPTY_KEY_ID, ClientName, Fingerprint, KeyId, Secret

#: Recognisable in any rendering: as text, as bytes' repr, as hex and as base64 would show it.
RAW = b"hunter2-TOPSECRET\x00\xff"
SHOWN = ("hunter2", "TOPSECRET", RAW.hex(), "aHVudGVyMi1UT1BTRUNSRVQ")


def assert_hidden(text: str) -> None:
    for shown in SHOWN:
        assert shown not in text


class Capture(logging.Handler):
    """A real handler: formats every record it gets, as a file or journal handler would."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    logger = logging.getLogger("mandos.test_values")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)


def test_secret_renderings_hide_the_bytes() -> None:
    secret = Secret(RAW)
    for text in (
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret!r}",
        f"{secret!s}",
        format(secret),
        "%s %r" % (secret, secret),  # noqa: UP031 - the %-style logging uses
        "{} {!r}".format(secret, secret),  # noqa: UP032
        repr([secret]),
        repr({"secret": secret}),
        str((secret,)),
    ):
        assert_hidden(text)
        assert f"<{len(RAW)} bytes>" in text


def test_secret_format_specs_do_not_reach_the_bytes() -> None:
    secret = Secret(RAW)
    with pytest.raises(TypeError):
        format(secret, "x")  # object.__format__ refuses a spec: no way to hex-dump it
    assert format(secret, "") == repr(secret)


def test_secret_in_log_records(captured: Capture) -> None:
    log = logging.getLogger("mandos.test_values")
    secret = Secret(RAW)
    log.info("secret %s", secret)
    log.info("secret %r", secret)
    log.warning("secrets %s", [secret])
    log.error("in a dict: %(s)s", {"s": secret})
    log.error("failed with %s", secret, exc_info=ValueError(secret))
    assert len(captured.lines) == 5
    for line in captured.lines:
        assert_hidden(line)


def test_secret_in_exceptions_and_tracebacks() -> None:
    secret = Secret(RAW)
    for exc in (ValueError(secret), MandosError(f"bad {secret}"), ConfigError(str(secret))):
        assert_hidden(str(exc))
        assert_hidden(repr(exc))
        text = "".join(traceback.format_exception(exc))
        assert_hidden(text)


def test_secret_compares_and_hashes_by_value_only() -> None:
    assert Secret(RAW) == Secret(RAW)
    assert Secret(RAW) != Secret(b"other")
    assert Secret(RAW) != RAW  # never equal to the bare bytes
    assert hash(Secret(RAW)) == hash(Secret(RAW))
    assert len(Secret(RAW)) == len(RAW)
    assert Secret(RAW).reveal() == RAW
    assert not hasattr(Secret(RAW), "__dict__")  # no stray attribute to leak through vars()


# -- key IDs and fingerprints ------------------------------------------------------------------

HEX = "0123456789abcdefABCDEF"
spacing = st.text(alphabet=" \t\n", max_size=3)


def spaced(digits: str, gaps: list[str]) -> str:
    return "".join(d + g for d, g in zip(digits, gaps, strict=False)) + "".join(gaps[len(digits) :])


@given(
    st.text(alphabet=HEX, min_size=64, max_size=64),
    st.lists(spacing, min_size=64, max_size=64),
    spacing,
)
def test_key_id_normalises_case_and_spacing(digits: str, gaps: list[str], lead: str) -> None:
    key = KeyId.parse(lead + spaced(digits, gaps))
    assert key == KeyId.parse(digits.upper()) == KeyId.parse(digits.lower())
    assert str(key) == digits.upper()
    assert key.hex == digits.upper()
    assert KeyId.parse(str(key)) == key  # normalised once: parsing its text is the identity


@given(
    st.text(alphabet=HEX, min_size=40, max_size=40),
    st.lists(spacing, min_size=40, max_size=40),
)
def test_fingerprint_normalises_case_and_spacing(digits: str, gaps: list[str]) -> None:
    fpr = Fingerprint.parse(spaced(digits, gaps))
    assert fpr == Fingerprint.parse(digits.swapcase())
    assert str(fpr) == digits.upper()
    assert Fingerprint.parse(str(fpr)) == fpr


@given(st.text(max_size=80))
def test_parse_accepts_exactly_the_hex_ids(raw: str) -> None:
    compact = "".join(raw.split()).upper()
    ok = set(compact) <= set(string.hexdigits.upper())
    for cls, size in ((KeyId, 64), (Fingerprint, 40)):
        if ok and len(compact) == size:
            assert str(cls.parse(raw)) == compact
        else:
            with pytest.raises(ConfigError):
                cls.parse(raw)


NEAR_HEX = st.text(alphabet="0123456789ABCDEFabcdef \t\x0b\u0663\uff21\ufb00xG", max_size=3)


@given(
    st.text(alphabet=string.hexdigits.upper(), min_size=34, max_size=64),
    st.lists(st.tuples(st.integers(0, 63), NEAR_HEX), max_size=3),
)
def test_the_constructors_take_exactly_the_normal_form(
    digits: str, edits: list[tuple[int, str]]
) -> None:
    text = digits
    for at, piece in edits:
        text = text[:at] + piece + text[at + len(piece) :]
    normal = set(text) <= set(string.hexdigits.upper())
    for cls, size in ((KeyId, 64), (Fingerprint, 40)):
        if normal and len(text) == size:
            assert cls(text).hex == text
        else:
            with pytest.raises(ConfigError):
                cls(text)


def test_ids_are_not_parsed_from_unnormalised_text_directly() -> None:
    with pytest.raises(ConfigError, match="not a key ID"):
        KeyId("ab" * 32)  # the constructor takes the normal form only
    with pytest.raises(ConfigError, match="not an OpenPGP fingerprint"):
        Fingerprint("A1" * 19)


def test_key_id_of_a_der_key_and_the_empty_key() -> None:
    assert KeyId.from_spki_der(b"") == EMPTY_KEY_ID
    assert str(EMPTY_KEY_ID).startswith("E3B0C442")
    assert KeyId.from_spki_der(b"x") != EMPTY_KEY_ID


@pytest.mark.parametrize(
    ("name", "path"),
    [("foo", "/clients/foo"), ("foo.example-1", "/clients/foo_example_1"), ("ä b", "/clients/__b")],
)
def test_client_name_object_path(name: str, path: str) -> None:
    assert ClientName(name).dbus_path() == path
    assert str(ClientName(name)) == name


@pytest.mark.parametrize("bad", ["", " x", "x ", "a\nb"])
def test_client_name_rejects(bad: str) -> None:
    with pytest.raises(ConfigError, match="not a valid client name"):
        ClientName(bad)


def test_key_ids_compare_and_hash_by_their_digits_only() -> None:
    key, same, other = KeyId("AB" * 32), KeyId("AB" * 32), KeyId("CD" * 32)
    assert key == same
    assert hash(key) == hash(same)
    assert {key: 1}[same] == 1  # the server's lookup of a peer's key
    assert key != other
    assert key != "AB" * 32  # a key ID is not its text
    assert key != Fingerprint("AB" * 20)
