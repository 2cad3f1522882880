"""mandos.conf and clients.conf parsing: ConfigParser semantics, placed errors, no leaks."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mandos.core.config import (
    DEFAULT_CHECKER,
    ClientConfig,
    ServerConfig,
    ServerSettings,
    merge_server_config,
)
from mandos.core.config_files import (
    CLIENT_DEFAULTS,
    parse_boolean,
    parse_clients_conf,
    parse_debuglevel,
    parse_server_conf,
)
from mandos.core.durations import parse_duration
from mandos.core.errors import ConfigError, KeyFileError
from mandos.core.values import ClientName, Fingerprint, KeyId, Secret

KEY_A = "788cd77115cd0bb7b2d5e0ae8496f6b48149d5e712c652076b1fd2d957ef7c1f"
KEY_B = "F90C7A81D72D1EA69A51031A91FF8885F36C8B46D155C8C58709A4C99AE9E361"
FPR_A = "7788 2722 5BA7 DE53 9C5A  7CFA 59CF F7CD BD9A 5920"
SECRET = b"\x85\x01\x0csome openpgp-ish bytes\x00\xff" * 5
SECRET_B64 = base64.b64encode(SECRET).decode()

# mandos-clients.conf(5), EXAMPLE (its secret shortened).
MAN_PAGE_EXAMPLE = f"""\
[DEFAULT]
timeout = PT5M
interval = PT2M
checker = fping -q -- %%(host)s

# Client "foo"
[foo]
key_id = {KEY_A}
fingerprint =  {FPR_A}
secret =
        {SECRET_B64[:40]}
        {SECRET_B64[40:]}
host = foo.example.org
interval = PT1M

# Client "bar"
[bar]
key_id = {KEY_B}
fingerprint = 3e393aeaefb84c7e89e2f547b3a107558fca3a27
secfile = /etc/mandos/bar-secret
timeout = PT15M
approved_by_default = False
approval_delay = PT30S
"""


def no_secfile(path: str) -> bytes:
    raise AssertionError(f"secfile {path} read unexpectedly")


def clients(text: str, **secfiles: bytes) -> tuple[ClientConfig, ...]:
    def read(path: str) -> bytes:
        try:
            return secfiles[path]
        except KeyError:
            raise FileNotFoundError(2, "No such file or directory", path) from None

    return parse_clients_conf(text, "clients.conf", read)


def section(body: str, name: str = "c", head: str = "") -> str:
    """A clients.conf with one client, a key ID and a secret, plus ``body``."""
    return f"{head}[{name}]\nkey_id = {KEY_A}\nsecret = {SECRET_B64}\n{body}"


def error(text: str, **secfiles: bytes) -> str:
    with pytest.raises(ConfigError) as info:
        clients(text, **secfiles)
    return str(info.value)


# --- clients.conf ---------------------------------------------------------------------------


def test_man_page_example() -> None:
    foo, bar = clients(MAN_PAGE_EXAMPLE, **{"/etc/mandos/bar-secret": b"bar secret"})
    assert foo.name == ClientName("foo")
    assert foo.key_id == KeyId.parse(KEY_A)
    assert foo.fingerprint == Fingerprint("778827225BA7DE539C5A7CFA59CFF7CDBD9A5920")
    assert foo.secret == Secret(SECRET)  # continuation lines joined
    assert foo.host == "foo.example.org"
    assert foo.interval == timedelta(minutes=1)
    assert foo.timeout == timedelta(minutes=5)
    assert foo.checker == "fping -q -- %(host)s"
    assert foo.approved_by_default is True
    assert bar.name == ClientName("bar")
    assert bar.secret == Secret(b"bar secret")
    assert bar.timeout == timedelta(minutes=15)
    assert bar.approved_by_default is False
    assert bar.approval_delay == timedelta(seconds=30)
    assert bar.host == ""


def test_defaults_match_the_config_model() -> None:
    (client,) = clients(section(""))
    model = ClientConfig(name=ClientName("c"), secret=Secret(SECRET), key_id=KeyId.parse(KEY_A))
    assert client == model
    assert client.checker == DEFAULT_CHECKER
    for key, text in CLIENT_DEFAULTS.items():
        if key in ("checker", "host"):
            continue
        value = getattr(model, key)
        assert (parse_duration(text) if isinstance(value, timedelta) else parse_boolean(text)) == (
            value
        )


def test_raw_holds_every_expanded_value_but_the_secret() -> None:
    (client,) = clients(section("Extra_Key = %(host)s:%(timeout)s\nhost = h\n"))
    raw = dict(client.raw)
    assert "secret" not in raw
    assert raw["extra_key"] == "h:PT5M"  # names lower-cased, expanded with the defaults
    assert raw["checker"] == "fping -q -- %(host)s"
    assert list(raw) == sorted(raw)


def test_start_time_expansion_from_section_and_default() -> None:
    text = section(
        "host = %(prefix)s.example.org\nchecker = ssh %%(host)s 100%% %(port)s\n",
        head="[DEFAULT]\nprefix = fallback\nport = 22\n",
    )
    (client,) = clients(text)
    assert client.host == "fallback.example.org"
    assert client.checker == "ssh %(host)s 100% 22"


def test_section_value_overrides_default() -> None:
    text = section("prefix = mine\nhost = %(prefix)s\n", head="[DEFAULT]\nprefix = fallback\n")
    assert clients(text)[0].host == "mine"


def test_colon_delimiter_comments_and_continuations() -> None:
    text = (
        "; a comment\n"
        "[c]\n"
        f"key_id: {KEY_A[:32]}\n"
        f"  {KEY_A[32:]}\n"  # continuation: the key ID's whitespace is dropped
        "# another comment\n"
        f"secret: {SECRET_B64}\n"
        "host:h\n"
    )
    (client,) = clients(text)
    assert client.key_id == KeyId.parse(KEY_A)
    assert client.host == "h"


@pytest.mark.parametrize("word", ["1", "yes", "true", "on", "YES", "True", "On"])
def test_true_words(word: str) -> None:
    assert clients(section(f"enabled = {word}\n"))[0].enabled is True


@pytest.mark.parametrize("word", ["0", "no", "false", "off", "NO", "False", "oFF"])
def test_false_words(word: str) -> None:
    assert clients(section(f"enabled = {word}\n"))[0].enabled is False


def test_key_id_alone_or_fingerprint_alone() -> None:
    text = f"[a]\nkey_id = {KEY_A}\nsecret = {SECRET_B64}\n"
    text += f"[b]\nfingerprint = {FPR_A}\nkey_id =\nsecret = {SECRET_B64}\n"
    a, b = clients(text)
    assert (a.key_id, a.fingerprint) == (KeyId.parse(KEY_A), None)
    assert (b.key_id, b.fingerprint) == (None, Fingerprint.parse(FPR_A))


def test_neither_key_id_nor_fingerprint() -> None:
    text = f"[DEFAULT]\nhost = x\n\n[lonely]\nsecret = {SECRET_B64}\n"
    assert error(text) == "clients.conf:4: client lonely: no key_id or fingerprint"


def test_neither_key_id_nor_fingerprint_can_be_skipped() -> None:
    """As Mandos 1.8.17: a warning, and the other sections are served."""
    text = f"[lonely]\nsecret = {SECRET_B64}\n[a]\nkey_id = {KEY_A}\nsecret = {SECRET_B64}\n"
    warnings: list[str] = []
    (a,) = parse_clients_conf(text, "clients.conf", skipped=warnings.append)
    assert a.name == ClientName("a")
    assert warnings == ["clients.conf:1: client lonely: no key_id or fingerprint; section skipped"]
    bad_secret = f"[lonely]\nsecret = {SECRET_B64}\n[b]\nkey_id = 12\n"
    with pytest.raises(ConfigError, match="key_id"):  # other errors still stop the server
        parse_clients_conf(bad_secret, skipped=warnings.append)


def test_secfile_used_when_no_secret() -> None:
    text = f"[c]\nkey_id = {KEY_A}\nsecfile = $HOME/%(name)s\nname = x\n"
    (client,) = clients(text, **{"$HOME/x": b"raw bytes"})
    assert client.secret == Secret(b"raw bytes")
    assert dict(client.raw)["secfile"] == "$HOME/x"


def test_secret_wins_over_secfile() -> None:
    text = section("secfile = /nonexistent\n")
    assert clients(text)[0].secret == Secret(SECRET)


def test_no_secret_or_secfile() -> None:
    assert error(f"\n[c]\nkey_id = {KEY_A}\n") == "clients.conf:2: client c: no secret or secfile"


def test_unreadable_secfile_names_the_line() -> None:
    text = f"[c]\nkey_id = {KEY_A}\nsecfile = /no/such\n"
    assert error(text) == (
        "clients.conf:3: secfile: cannot read '/no/such': No such file or directory"
    )


def test_secfile_reader_may_raise_mandos_errors() -> None:
    def read(_path: str) -> bytes:
        raise KeyFileError("permission denied")

    text = f"[c]\nkey_id = {KEY_A}\nsecfile = /x\n"
    with pytest.raises(ConfigError, match=r"^clients.conf:3: secfile: cannot read '/x': perm"):
        parse_clients_conf(text, "clients.conf", read)


def test_secfile_without_a_reader() -> None:
    text = f"[c]\nkey_id = {KEY_A}\nsecfile = /x\n"
    with pytest.raises(
        ConfigError, match=r"^clients\.conf:3: secfile: secret files cannot be read"
    ):
        parse_clients_conf(text)


def test_secret_reader_not_called_for_inline_secrets() -> None:
    assert len(parse_clients_conf(MAN_PAGE_EXAMPLE.split('# Client "bar"')[0], "x", no_secfile))


def test_bad_base64_is_placed_and_not_quoted() -> None:
    text = f"[DEFAULT]\nsecret = QUJDRA\n[c]\nkey_id = {KEY_A}\n"
    message = error(text)
    assert message == "clients.conf:2: secret: not valid base64"


def test_empty_secret_is_kept_as_in_the_reference() -> None:
    assert clients(f"[c]\nkey_id = {KEY_A}\nsecret =\n")[0].secret == Secret(b"")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("timeout = PT5X\n", "clients.conf:4: timeout: 'PT5X' is not a duration"),
        ("interval = 1 fortnight\n", "clients.conf:4: interval: '1 fortnight' is not a duration"),
        ("enabled = maybe\n", "clients.conf:4: enabled: 'maybe' is not a boolean"),
        ("approved_by_default = 2\n", "clients.conf:4: approved_by_default: '2' is not a boolean"),
        ("fingerprint = abc\n", "clients.conf:4: fingerprint: 'ABC' is not an OpenPGP finger"),
    ],
)
def test_value_errors_name_file_line_and_key(body: str, message: str) -> None:
    assert error(section(body)).startswith(message)


def test_value_error_from_default_section_names_its_line() -> None:
    text = section("", head="[DEFAULT]\n\nextended_timeout = never\n")
    assert error(text) == "clients.conf:3: extended_timeout: 'never' is not a duration"


def test_bad_key_id_names_its_line() -> None:
    text = f"[c]\nsecret = {SECRET_B64}\nkey_id = 1234\n"
    assert error(text) == "clients.conf:3: key_id: '1234' is not a key ID (64 hex digits)"


def test_bad_client_name_names_the_header() -> None:
    assert error(section("", name=" spaced", head="\n")) == (
        "clients.conf:2: ' spaced' is not a valid client name"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"[c]\n[d]\n[c]\nsecret = {SECRET_B64}\n", "clients.conf:3: section [c] appears twice"),
        ("[c]\nhost = a\nHOST = b\n", "clients.conf:3: host: set twice in section [c]"),
        ("host = a\n[c]\n", "clients.conf:1: option before any [section] header"),
        (
            "[c]\nhost = a\nthis line has no delimiter\n",
            "clients.conf:3: not a [section] header, an option, a continuation line or a comment",
        ),
        (
            section("host = %(nosuch)s\n", head="\n"),
            "clients.conf:5: host: %(nosuch)s names no option (write %% for a %)",
        ),
        (
            section("checker = 100% up\n"),
            "clients.conf:4: checker: bad %-expansion (write %% for a %)",
        ),
        (
            section("a = %(b)s\nb = %(a)s\n"),
            "clients.conf:4: a: %(name)s expansion nested too deeply",
        ),
    ],
)
def test_configparser_errors_are_placed(text: str, message: str) -> None:
    assert error(text) == message


def test_interpolation_errors_do_not_quote_the_secret() -> None:
    text = f"[c]\nkey_id = {KEY_A}\nsecret = {SECRET_B64}%(oops)s\n"
    message = error(text)
    assert SECRET_B64 not in message
    assert message == "clients.conf:3: secret: %(oops)s names no option (write %% for a %)"
    text = f"[c]\nkey_id = {KEY_A}\nsecret = {SECRET_B64}%\n"
    assert SECRET_B64 not in error(text)


def test_parse_errors_do_not_quote_lines() -> None:
    # A secret line that lost its indentation is a parse error; it must not be echoed.
    text = f"[c]\nkey_id = {KEY_A}\nsecret =\n{SECRET_B64}\n"
    assert SECRET_B64 not in error(text)
    assert SECRET_B64 not in error(f"{SECRET_B64}\n[c]\n")


def test_no_clients() -> None:
    assert clients("") == ()
    assert clients("[DEFAULT]\nhost = x\n") == ()


def test_lower_case_default_is_a_client_section() -> None:
    # Only "[DEFAULT]" is special, as in configparser.
    assert error("[default]\nhost = x\n").endswith("client default: no key_id or fingerprint")


def test_crlf_and_unicode_survive() -> None:
    text = section("host = h\u00e9\r\n").replace("\n", "\r\n")
    assert clients(text)[0].host == "h\u00e9"


def test_origin_is_used() -> None:
    with pytest.raises(ConfigError, match=r"^/etc/mandos/clients.conf:1: option before"):
        parse_clients_conf("x = 1\n", "/etc/mandos/clients.conf", no_secfile)


# --- mandos.conf ----------------------------------------------------------------------------

FULL_SERVER_CONF = """\
[DEFAULT]
# A configuration example (mandos.conf(5))
interface = enp1s0
address = fe80::aede:48ff:fe71:f6f2
port = 1025
debug = True
priority = SECURE128:!CTYPE-X.509:+CTYPE-RAWPK:!RSA:!VERS-ALL:+VERS-TLS1.3:%PROFILE_ULTRA
servicename = Daena
use_dbus = False
use_ipv6 = True
restore = True
statedir = /var/lib/mandos
socket: 3
foreground = yes
zeroconf = off
debuglevel = info
handshake_timeout = PT3S
"""


def test_server_conf_all_options() -> None:
    assert parse_server_conf(FULL_SERVER_CONF) == ServerSettings(
        interface="enp1s0",
        address="fe80::aede:48ff:fe71:f6f2",
        port=1025,
        debug=True,
        priority="SECURE128:!CTYPE-X.509:+CTYPE-RAWPK:!RSA:!VERS-ALL:+VERS-TLS1.3:%PROFILE_ULTRA",
        servicename="Daena",
        use_dbus=False,
        use_ipv6=True,
        restore=True,
        statedir="/var/lib/mandos",
        socket=3,
        foreground=True,
        zeroconf=False,
        debuglevel="INFO",
        handshake_timeout=timedelta(seconds=3),
    )


def test_server_settings_are_server_config_fields() -> None:
    fields = [f.name for f in dataclasses.fields(ServerConfig)]
    assert sorted(f.name for f in dataclasses.fields(ServerSettings)) == sorted(fields)
    merged = merge_server_config(ServerConfig(), parse_server_conf(FULL_SERVER_CONF))
    assert (merged.port, merged.servicename, merged.configdir) == (1025, "Daena", "/etc/mandos")


def test_merge_layers_later_wins_and_none_keeps() -> None:
    base = ServerConfig()
    first, second = ServerSettings(port=1, servicename="A"), ServerSettings(port=2, debug=False)
    merged = merge_server_config(base, first, second)
    assert (merged.port, merged.servicename, merged.debug) == (2, "A", False)
    assert merge_server_config(base) == base == merge_server_config(base, ServerSettings())
    assert second.given() == {"port": 2, "debug": False}


def test_server_conf_only_what_is_set() -> None:
    assert parse_server_conf("[DEFAULT]\n") == ServerSettings()
    assert parse_server_conf("") == ServerSettings()
    only_interface = parse_server_conf("[DEFAULT]\nport =\nsocket =\ninterface =\n")
    assert only_interface == ServerSettings(interface="")


def test_server_conf_ignores_unknown_keys_configdir_and_other_sections() -> None:
    text = "[DEFAULT]\nfrobnicate = 1\nconfigdir = /elsewhere\n[other]\nport = 99\n"
    assert parse_server_conf(text) == ServerSettings()


def test_server_conf_has_no_expansion() -> None:
    parsed = parse_server_conf("[DEFAULT]\nservicename = %(x)s 100%\n")
    assert parsed == ServerSettings(servicename="%(x)s 100%")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("port = http", "port: 'http' is not a number"),
        ("port = 65536", "port: '65536' is out of range (0 to 65535)"),
        ("port = -1", "port: '-1' is out of range (0 to 65535)"),
        ("socket = -1", "socket: '-1' is out of range (0)"),
        ("use_dbus = nope", "use_dbus: 'nope' is not a boolean (1/yes/true/on/0/no/false/off)"),
        ("debug =", "debug: '' is not a boolean"),
        ("debuglevel = loud", "debuglevel: 'loud' is not a debug level (CRITICAL, ERROR, WARN"),
        ("handshake_timeout = soon", "handshake_timeout: 'soon' is not a duration"),
    ],
)
def test_server_conf_errors(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_server_conf(f"[DEFAULT]\n# comment\n{line}\n", "/etc/mandos/mandos.conf")
    assert str(info.value).startswith(f"/etc/mandos/mandos.conf:3: {message}")
    assert info.value.line == 3


def test_server_conf_syntax_error() -> None:
    with pytest.raises(ConfigError, match=r"^mandos.conf:1: option before any \[section\]"):
        parse_server_conf("port = 1\n")


@pytest.mark.parametrize("level", ["", "critical", "Error", "WARNING", "info", "debug"])
def test_debuglevels(level: str) -> None:
    assert parse_debuglevel(level) == level.upper()


# --- properties -----------------------------------------------------------------------------

LINES = st.sampled_from(
    [
        "[DEFAULT]",
        "[c]",
        "[d]",
        "[ e]",
        f"key_id = {KEY_A}",
        f"fingerprint = {FPR_A}",
        f"secret = {SECRET_B64}",
        "secret = @@",
        "secfile = /x",
        "host = %(name)s",
        "name = n",
        "checker = %%(host)s 100%",
        "timeout = PT1M",
        "timeout = 5x",
        "interval: 1d 2h",
        "enabled = no",
        "enabled = maybe",
        "port = 1",
        "port = x",
        "debuglevel = info",
        "  continued",
        "# comment",
        "; comment",
        "",
        "stray",
        "a = %(b)s",
        "b = %(a)s",
    ]
)
CONFIG_LIKE = st.lists(st.one_of(LINES, st.text(max_size=12)), max_size=14).map("\n".join)


def _parse_both(text: str) -> None:
    message = ""
    try:
        parsed = clients(text, **{"/x": b"file secret"})
    except ConfigError as exc:
        message = str(exc)
    else:
        for client in parsed:
            assert client.key_id is not None or client.fingerprint is not None
    assert SECRET_B64 not in message
    with contextlib.suppress(ConfigError):
        parse_server_conf(text)


@given(st.text())
def test_any_text_parses_or_raises_config_error(text: str) -> None:
    _parse_both(text)


@given(CONFIG_LIKE)
def test_config_like_text_parses_or_raises_config_error(text: str) -> None:
    _parse_both(text)


def test_indented_header_and_option_lines_are_placed() -> None:
    # configparser reads an indented line as a header or an option unless an option is open.
    text = f"  [c]\n  secret = {SECRET_B64}\n    more\n  key_id = {KEY_A}\n  timeout = x\n"
    assert error(text) == "clients.conf:5: timeout: 'x' is not a duration"
    assert error("  [ x]\n") == "clients.conf:1: ' x' is not a valid client name"
