"""mandos-doctor's pure judgements (doctor/checks.py)."""

from __future__ import annotations

from mandos.doctor import checks


def test_crypttab_parsing_and_root_choice() -> None:
    text = (
        "# comment\n\nswap /dev/sda2 /dev/urandom swap\n"
        "root UUID=1234 none luks,discard,keyscript=/usr/lib/mandos/plugin-runner\n"
        "bogus\n"
    )
    lines = checks.parse_crypttab(text)
    assert [c.target for c in lines] == ["swap", "root"]
    assert lines[1].options["keyscript"] == "/usr/lib/mandos/plugin-runner"
    assert checks.crypttab_check(lines, "root").ok
    first = checks.crypttab_check(lines, None)  # no root name: the first line is judged
    assert not first.ok
    assert "swap" in first.detail


def test_connect_from_plugin_runner_conf() -> None:
    conf = "# x\n--options-for=mandos-client:--connect=192.0.2.1:1234,--debug\n"
    assert checks.connect_from_runner_conf(conf) == "192.0.2.1:1234"
    assert checks.connect_from_runner_conf("--timeout=10\n") is None


def test_network_words() -> None:
    ok = checks.network_check("ro ip=192.0.2.5::192.0.2.1:255.255.255.0::eth0:off", {}, None)
    assert ok.ok
    assert "DEVICE=eth0" in ok.detail
    off = checks.network_check("ro mandos=connect,off", {}, None)
    assert not off.ok
    assert "mandos=off" in off.detail
    assert checks.connect_from_cmdline("ro mandos=connect:192.0.2.1:9 ip=dhcp") == "192.0.2.1:9"
    assert checks.connect_from_cmdline("ro mandos=connect") is None
    conf = checks.parse_shell_conf('DEVICE="eth1"\n# IP=off\n')
    assert checks.network_check("ro", conf, "192.0.2.1:1").detail == (
        "ip=dhcp (default), DEVICE=eth1, --connect=192.0.2.1:1"
    )
    assert not checks.network_check("ro", {"IP": "none"}, None).ok


def test_line_format() -> None:
    assert checks.Check("keys", True, "fine").line() == "ok     keys: fine"
    bad = checks.Check("keys", False, "missing", "run mandos-keygen")
    assert bad.line() == "FAILED keys: missing -- fix: run mandos-keygen"
    assert checks.Check("x", False, "needs y", skipped=True).line() == "skip   x: needs y"


def test_unreadable_keys_ask_for_root() -> None:
    modes = dict.fromkeys(checks.KEY_FILES, 0o100600)
    found = checks.keys_check("/k", modes, 0o40700, ["seckey.txt"])
    assert not found.ok
    assert found.fix == "run mandos-doctor as root"
