"""mandos-client's option parsing: argp conventions, the reference's defaults, --connect forms."""

from __future__ import annotations

import contextlib
import ipaddress
import socket

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mandos.client.args import (
    DEFAULT_PRIORITY,
    ClientOptions,
    ConnectTarget,
    Info,
    help_text,
    is_ipv4,
    parse_args,
    parse_connect,
    resolve_hook_dir,
    usage_text,
)
from mandos.core.errors import UsageError


def _opts(*argv: str) -> ClientOptions:
    parsed = parse_args(argv)
    assert isinstance(parsed, ClientOptions)
    return parsed


def test_defaults_are_the_reference_ones() -> None:
    o = _opts()
    assert o.connect is None
    assert o.pubkey == "/conf/conf.d/mandos/pubkey.txt"
    assert o.seckey == "/conf/conf.d/mandos/seckey.txt"
    assert o.tls_pubkey == "/conf/conf.d/mandos/tls-pubkey.pem"
    assert o.tls_privkey == "/conf/conf.d/mandos/tls-privkey.pem"
    assert o.priority == DEFAULT_PRIORITY
    assert (o.delay, o.retry, o.dh_bits, o.dh_params) == (2.5, 10.0, None, None)
    assert o.network_hook_dir == "/lib/mandos/network-hooks.d"
    assert not o.debug
    assert o.auto_interfaces
    assert o.auto_bring_up


def test_every_option_long_short_and_abbreviated() -> None:
    o = _opts(
        "-c", "10.0.0.1:4711", "-ieth0", "-p", "P", "-sS", "-t", "TK", "-T", "TP",
        "--priority=NORMAL", "--dh-bits", "2048", "--dh-params=DH", "--del=1.5",
        "--retry=0.25", "--network-hook-dir=/h", "--debug",
    )  # fmt: skip
    assert o.connect == ConnectTarget("10.0.0.1", 4711, ipv6=False)
    assert o.connect_raw == "10.0.0.1:4711"
    assert o.interface_args == ("eth0",)
    assert (o.pubkey, o.seckey, o.tls_privkey, o.tls_pubkey) == ("P", "S", "TK", "TP")
    assert (o.priority, o.dh_bits, o.dh_params) == ("NORMAL", 2048, "DH")
    assert (o.delay, o.retry, o.network_hook_dir, o.debug) == (1.5, 0.25, "/h", True)


@pytest.mark.parametrize(
    ("argv", "info"),
    [(["--help"], Info.HELP), (["-?"], Info.HELP), (["--usage"], Info.USAGE),
     (["-V"], Info.VERSION), (["--vers"], Info.VERSION), (["-?V"], Info.HELP),
     (["-V", "--connect"], Info.VERSION)],
)  # fmt: skip
def test_informational_requests(argv: list[str], info: Info) -> None:
    assert parse_args(argv) is info


def test_help_and_usage_name_every_option() -> None:
    for name in ("connect", "interface", "pubkey", "seckey", "tls-pubkey", "tls-privkey",
                 "priority", "dh-bits", "dh-params", "delay", "retry", "network-hook-dir",
                 "debug"):  # fmt: skip
        assert f"--{name}" in help_text()
        assert f"--{name}" in usage_text()


def test_interfaces_repeat_split_and_none() -> None:
    o = _opts("-i", "eth0,eth1", "--interface=none,eth2", "-i", "eth3")
    assert o.interface_args == ("eth0", "eth1", "none", "eth2", "eth3")
    assert o.interfaces == ("eth0", "eth1", "eth2", "eth3")
    assert o.bring_up == ("eth0", "eth1")
    assert o.device == "eth0,eth1,none,eth2,eth3"
    only_none = _opts("-i", "none")
    assert only_none.auto_interfaces
    assert not only_none.auto_bring_up


@pytest.mark.parametrize(
    ("raw", "target"),
    [
        ("192.0.2.1:4711", ConnectTarget("192.0.2.1", 4711, ipv6=False)),
        ("[2001:db8::1]:4711", ConnectTarget("2001:db8::1", 4711, ipv6=True)),
        ("2001:db8::1:4711", ConnectTarget("2001:db8::1", 4711, ipv6=True)),
        ("::1:9", ConnectTarget("::1", 9, ipv6=True)),
        ("fe80::1%eth0:4711", ConnectTarget("fe80::1", 4711, ipv6=True, scope="eth0")),
        (
            "[fe80::aede:48ff:fe71:f6f2%3]:1",
            ConnectTarget("fe80::aede:48ff:fe71:f6f2", 1, True, "3"),
        ),
    ],
)
def test_connect_forms(raw: str, target: ConnectTarget) -> None:
    assert parse_connect(raw) == target


def test_link_local_takes_the_single_interface_as_scope() -> None:
    o = _opts("--connect=fe80::aede:48ff:fe71:f6f2:4711", "--interface=eth2")
    assert o.connect == ConnectTarget("fe80::aede:48ff:fe71:f6f2", 4711, ipv6=True, scope="eth2")
    assert o.connect.link_local


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--connect=foo"], "No colon in address"),
        (["--connect=1.2.3.4:abc"], "Bad port number"),
        (["--connect=1.2.3.4:99999"], "Bad port number"),
        (["--connect=1.2.3.4:0"], "Bad port number"),
        (["--connect=host.example:80"], "Bad address"),
        (["--connect=fe80::1:80"], "needs an interface"),
        (["--connect=fe80::1:80", "-i", "a,b"], "needs an interface"),
        (["--connect=[fe80::1%]:80"], "Bad address"),
        (["--retry=x"], "Bad retry interval"),
        (["--retry=-1"], "Bad retry interval"),
        (["--retry=inf"], "Bad retry interval"),
        (["--delay="], "Bad delay"),
        (["--dh-bits=x"], "Bad number of DH bits"),
        (["--de=1"], "ambiguous"),
        (["--nope"], "unrecognized option '--nope'"),
        (["-x"], "invalid option -- 'x'"),
        (["--connect"], "requires an argument"),
        (["-c"], "requires an argument"),
        (["--debug=yes"], "doesn't allow an argument"),
        (["operand"], "Too many arguments"),
        (["--", "operand"], "Too many arguments"),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_args(argv)


def test_double_dash_alone_ends_options() -> None:
    assert _opts("--debug", "--").debug


@given(st.lists(st.text(max_size=20), max_size=6))
def test_parser_raises_only_usage_error(argv: list[str]) -> None:
    with contextlib.suppress(UsageError):
        parse_args(argv)


@given(st.text(max_size=60))
@example(":²")  # a digit int() refuses: "Bad port number", not a ValueError
@example("1.2.3.4:٣")
def test_connect_parser_raises_only_usage_error(raw: str) -> None:
    with contextlib.suppress(UsageError):
        target = parse_connect(raw)
        assert 0 < target.port <= 65535


@given(st.text(alphabet="0123456789.x٣ /", max_size=20) | st.ip_addresses(v=4).map(str))
@example("01.2.3.4")
@example("1.2.3.256")
@example("1.2.3.4/32")
@example("")
def test_ipv4_check_accepts_what_ipaddress_accepts(raw: str) -> None:
    try:
        ipaddress.IPv4Address(raw)
    except ValueError:
        assert not is_ipv4(raw)
    else:
        assert is_ipv4(raw)


@pytest.mark.parametrize(("scope", "scope_id"), [("0", 0), ("7", 7), ("²", 0), ("lo", None)])
def test_connect_scope_is_a_number_or_an_interface(scope: str, scope_id: int | None) -> None:
    from mandos.client.connect import connect_target

    target = _opts(f"--connect=[fe80::1%{scope}]:4711").connect
    assert target is not None
    label, _family, sockaddr = connect_target(target)
    assert label == f"[fe80::1%{scope}]:4711"
    assert sockaddr == (
        "fe80::1",
        4711,
        0,
        socket.if_nametoindex("lo") if scope_id is None else scope_id,
    )


def test_hook_dir_outside_the_initramfs_is_the_admins() -> None:
    """/lib/mandos/network-hooks.d exists only in the initramfs; elsewhere the default is
    /etc/mandos/network-hooks.d, which integration/install creates (issue 15)."""
    default = parse_args([])
    assert isinstance(default, ClientOptions)
    only_etc = {"/etc/mandos/network-hooks.d"}.__contains__
    both = {"/etc/mandos/network-hooks.d", "/lib/mandos/network-hooks.d"}.__contains__
    assert resolve_hook_dir(default, only_etc).network_hook_dir == "/etc/mandos/network-hooks.d"
    assert resolve_hook_dir(default, both).network_hook_dir == "/lib/mandos/network-hooks.d"
    assert resolve_hook_dir(default, set().__contains__) == default
    explicit = parse_args(["--network-hook-dir=/srv/hooks"])
    assert isinstance(explicit, ClientOptions)
    assert resolve_hook_dir(explicit, only_etc) == explicit


def test_connect_may_be_given_several_times() -> None:
    o = _opts("--connect=10.0.0.1:1", "-c", "[::1]:2", "--connect=10.0.0.3:3")
    assert o.connects == (
        ConnectTarget("10.0.0.1", 1, ipv6=False),
        ConnectTarget("::1", 2, ipv6=True),
        ConnectTarget("10.0.0.3", 3, ipv6=False),
    )
    assert o.connect == o.connects[0]
    assert o.connect_raw == "10.0.0.1:1,[::1]:2,10.0.0.3:3"  # the hooks' CONNECT


def test_deadline() -> None:
    assert _opts().deadline == 5.0
    assert _opts("--deadline=0.5").deadline == 0.5
    assert _opts("--dea", "2").deadline == 2.0
    for bad in ("0", "-1", "x", "inf"):
        with pytest.raises(UsageError, match="Bad deadline"):
            parse_args([f"--deadline={bad}"])
