"""Our mandos-ctl against a real server, compared with Debian's mandos-ctl on the same bus.

Every scenario that talks to a server runs twice: against Debian's real Mandos 1.8.16 server and
against ours (D-Bus on), through the parametrized ``start_server`` fixture that ``server`` and
``shared_server`` build on. ``test_every_scenario_runs_against_both_servers`` fails if a test
here neither asks for a server nor is listed in ``SERVERLESS``, so none silently skips ours.
Every mandos-ctl option is covered: -a -v -j -V -e -d -b --start-checker --stop-checker -c -t
--extended-timeout -i --approval-delay --approval-duration --approve-by-default
--deny-by-default -H -s -A -D -r --debug --version, an unknown client, a malformed duration.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mandos import __version__
from tests.ctl.ourbus import (
    ServerUnderTest,
    StartServer,
    running_our_server,
    running_reference_server,
)
from tests.ctl.refserver import Ran, clients_conf, our_ctl, reference_ctl, reference_keys
from tests.interop.reference import REFERENCE_PASSWORD, PrivateSystemBus, run_reference_client

pytestmark = pytest.mark.interop

Server = tuple[PrivateSystemBus, ServerUnderTest]


SERVERS: dict[str, StartServer] = {
    "reference": running_reference_server,
    "ours": running_our_server,
}
SERVER_FIXTURES = frozenset({"start_server", "server", "shared_server"})
#: The tests that need no Mandos server (no bus, or a bus without a server).
SERVERLESS = frozenset(
    {
        "test_version",
        "test_no_server_on_bus_same_as_reference",
        "test_no_bus_at_all_says_so",
        "test_every_scenario_runs_against_both_servers",
    }
)


@pytest.fixture(scope="module", params=sorted(SERVERS))
def start_server(request: pytest.FixtureRequest) -> StartServer:
    """Which server the scenarios run against: each of them in turn."""
    return SERVERS[request.param]


@pytest.fixture
def server(start_server: StartServer) -> Iterator[Server]:
    """A fresh server (tests change its clients)."""
    with start_server(None) as pair:
        yield pair


@pytest.fixture(scope="module")
def shared_server(start_server: StartServer) -> Iterator[Server]:
    """One server for the read-only comparisons."""
    with start_server(None) as pair:
        yield pair


def props(bus: PrivateSystemBus, name: str = "client1") -> dict[str, Any]:
    """The client's properties, read with Debian's mandos-ctl --dump-json."""
    done = reference_ctl(bus, ["--dump-json"])
    assert done.returncode == 0, done.stderr
    data: dict[str, dict[str, Any]] = json.loads(done.stdout)
    return data[name]


def assert_same(bus: PrivateSystemBus, args: list[str]) -> Ran:
    """Ours prints the same bytes and exits the same as Debian's mandos-ctl."""
    for _ in range(3):  # a server-side change between the runs: try again
        before = reference_ctl(bus, args)
        ours = our_ctl(bus, args)
        after = reference_ctl(bus, args)
        if before == after:
            assert ours == before, args
            return ours
    raise AssertionError(f"reference output keeps changing for {args}")


# ------------------------------------------------------------------ byte-for-byte

SAME_ARGS = [
    [],
    ["-v"],
    ["--verbose"],
    ["-j"],
    ["--dump-json"],
    ["client1"],
    ["other-one.x", "client1"],
    ["client1", "client1"],
    ["-v", "other-one.x"],
    ["-j", "client1"],
    ["--help"],
    ["-e"],
    ["-a"],
    ["-a", "-v"],
    ["-v", "-e", "client1"],
    ["-j", "-e", "client1"],
    ["-j", "-v"],
    ["-V"],
    ["-V", "client1", "other-one.x"],
    ["-r", "-e", "client1"],
    ["-e", "-d", "client1"],
    ["-A", "-D", "client1"],
    ["--start-checker", "--stop-checker", "client1"],
    ["--approve-by-default", "--deny-by-default", "client1"],
    ["-t"],
    ["--bogus"],
    ["-s", "/nonexistent/secret", "client1"],
    ["nope"],
    ["-e", "nope"],
    ["-V", "nope"],
    ["client1", "nope"],
    ["-V", "client1"],
    ["-V", "other-one.x"],
]


@pytest.mark.parametrize("args", SAME_ARGS, ids=lambda a: " ".join(a) or "(none)")
def test_same_output_as_reference(shared_server: Server, args: list[str]) -> None:
    assert_same(shared_server[0], args)


def test_table_and_exit_statuses(shared_server: Server) -> None:
    bus = shared_server[0]
    table = our_ctl(bus, [])
    assert table.stdout.splitlines()[0] == "Name        Enabled Timeout    Last Successful Check"
    rows = table.stdout.splitlines()[1:]
    assert any(row.startswith("other-one.x No      1T02:00:00 ") for row in rows)
    assert our_ctl(bus, ["-V", "client1"]).returncode == 0
    assert our_ctl(bus, ["-V", "other-one.x"]).returncode == 1
    unknown = our_ctl(bus, ["nope"])
    assert (unknown.returncode, unknown.stderr) == (1, "Client not found on server: 'nope'\n")


def test_debug_lines_match_reference(server: Server) -> None:
    bus = server[0]
    for args in (["--debug", "-e", "client1"], ["--debug", "-t", "PT10M", "-a"]):
        ref = reference_ctl(bus, args)
        ours = our_ctl(bus, args)
        assert (ours.returncode, ours.stdout, ours.stderr) == (0, "", ref.stderr)


def test_version() -> None:
    bus = PrivateSystemBus()  # not started: --version needs no bus
    done = our_ctl(bus, ["--version"])
    assert (done.returncode, done.stdout) == (0, f"mandos-ctl {__version__}\n")


# ------------------------------------------------------------------ every action


SETTERS = [
    (["-c", "sleep 60"], "Checker", "sleep 60"),
    (["--start-checker"], "CheckerRunning", True),
    (["-t", "PT7M"], "Timeout", 420000),
    (["--timeout", "2h 30m"], "Timeout", 9000000),
    (["--extended-timeout", "P1DT1H"], "ExtendedTimeout", 90000000),
    (["-i", "90s"], "Interval", 90000),
    (["--approval-delay", "PT30S"], "ApprovalDelay", 30000),
    (["--approval-duration", "1500"], "ApprovalDuration", 1500),
    (["--deny-by-default"], "ApprovedByDefault", False),
    (["-H", "host.example"], "Host", "host.example"),
    (["-d"], "Enabled", False),
]


def test_every_setter(server: Server) -> None:
    bus = server[0]
    for args, key, value in SETTERS:
        done = our_ctl(bus, [*args, "client1"])
        assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), args
        assert props(bus)[key] == value, args
    # and back
    for args, key, value in (
        (["-e"], "Enabled", True),
        (["--approve-by-default"], "ApprovedByDefault", True),
        (["--start-checker"], "CheckerRunning", True),
        (["--stop-checker"], "CheckerRunning", False),
    ):
        assert our_ctl(bus, [*args, "client1"]).returncode == 0
        assert props(bus)[key] == value, args


def test_all_and_bump_timeout(server: Server) -> None:
    bus = server[0]
    assert our_ctl(bus, ["-a", "-H", "same.example"]).returncode == 0
    assert props(bus, "client1")["Host"] == props(bus, "other-one.x")["Host"] == "same.example"
    assert props(bus)["LastCheckedOK"] == ""
    assert our_ctl(bus, ["-b", "client1"]).returncode == 0
    assert props(bus)["LastCheckedOK"] != ""


def test_remove_denies_first(server: Server) -> None:
    bus = server[0]
    done = our_ctl(bus, ["--debug", "-r", "-D", "other-one.x"])
    assert done.returncode == 0
    calls = [ln for ln in done.stderr.splitlines() if "Connect to" not in ln]
    assert calls[-2:] == [
        "D-Bus: se.recompile.Mandos:/clients/other_one_x:se.recompile.Mandos.Client.Approve(False)",
        "D-Bus: se.recompile.Mandos:/:se.recompile.Mandos.RemoveClient('/clients/other_one_x')",
    ]
    names = [ln.split()[0] for ln in our_ctl(bus, []).stdout.splitlines()[1:]]
    assert names == ["client1"]


# ------------------------------------------------------------------ with the real client


def _client_in_background(
    keydir: Path, connect: str, timeout: float = 90
) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        result.append(run_reference_client(keydir, connect, timeout=timeout))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _wait_pending(bus: PrivateSystemBus, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not props(bus)["ApprovalPending"]:
        assert time.monotonic() < deadline, "no approval request arrived"
        time.sleep(0.3)


def test_approve_lets_real_client_get_password(start_server: StartServer) -> None:
    conf = clients_conf(approval_delay="PT5M", approved_by_default="False")
    with start_server(conf) as (bus, srv):
        thread, result = _client_in_background(reference_keys().keydir, srv.connect)
        try:
            _wait_pending(bus)
            assert our_ctl(bus, ["-A", "client1"]).returncode == 0
        finally:
            thread.join(timeout=120)
        assert result[0].returncode == 0, result[0].stderr
        assert result[0].stdout == REFERENCE_PASSWORD


def test_deny_rejects_real_client(start_server: StartServer) -> None:
    conf = clients_conf(approval_delay="PT5M", approved_by_default="True")
    with start_server(conf) as (bus, srv):
        # Denied, the client retries for ever: its deadline only needs to outlast the denial.
        thread, result = _client_in_background(reference_keys().keydir, srv.connect, timeout=30)
        try:
            _wait_pending(bus)
            assert our_ctl(bus, ["--deny", "client1"]).returncode == 0
            srv.wait_for_log(r"Client client1 was not approved")
            assert our_ctl(bus, ["--disable", "client1"]).returncode == 0
        finally:
            srv.stop()  # the client keeps retrying; ending the server ends its hopes
            thread.join(timeout=120)
        assert result[0].stdout == b""


def test_secret_file_is_what_the_client_gets(tmp_path: Path, start_server: StartServer) -> None:
    section = reference_keys().section_text
    assert section is not None
    blob_lines = section.split("secret =", 1)[1].splitlines()
    blob = "".join(ln.strip() for ln in blob_lines[1:] if ln.startswith((" ", "\t")))
    import base64

    secret_file = tmp_path / "secret.bin"
    secret_file.write_bytes(base64.b64decode(blob))
    conf = clients_conf().replace(blob_lines[1].strip(), "aGVsbG8K", 1)  # a broken secret
    with start_server(conf) as (bus, srv):
        done = our_ctl(bus, ["--secret", str(secret_file), "client1"])
        assert (done.returncode, done.stderr) == (0, "")
        got = run_reference_client(reference_keys().keydir, srv.connect, timeout=90)
    assert got.stdout == REFERENCE_PASSWORD


# ------------------------------------------------------------------ failures


def test_no_server_on_bus_same_as_reference() -> None:
    with PrivateSystemBus() as bus:
        for args in ([], ["-e", "client1"], ["-V", "client1"]):
            ref = reference_ctl(bus, args)
            ours = our_ctl(bus, args)
            # The reference's line, then what to check (issue 15).
            first, hint = ours.stderr.splitlines()
            assert (ours.returncode, ours.stdout, first + "\n") == (
                ref.returncode,
                ref.stdout,
                ref.stderr,
            )
            assert ours.returncode == 1
            assert first.startswith("Could not connect to Mandos server: ")
            assert hint == (
                "mandos-ctl: the Mandos server is not running, or runs without D-Bus (--no-dbus"
                " or use_dbus = False); check with: systemctl status mandos;"
                " busctl --system status se.recompile.Mandos"
            )


def test_no_bus_at_all_says_so() -> None:
    bus = PrivateSystemBus()
    bus.address = "unix:path=/nonexistent/bus_socket"
    done = our_ctl(bus, [])
    assert done.returncode == 1
    first, hint = done.stderr.splitlines()
    assert first.startswith("Could not connect to Mandos server: ")
    assert (
        hint == "mandos-ctl: there is no system D-Bus at /nonexistent/bus_socket: is dbus running?"
    )


def test_malformed_duration_is_refused(shared_server: Server) -> None:
    bus = shared_server[0]
    done = our_ctl(bus, ["-t", "bogus", "client1"])
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "mandos-ctl: error: argument -t/--timeout: 'bogus' is not a duration"
    )
    assert props(bus)["Timeout"] == 300000  # unchanged (the reference would set 0)


def test_every_scenario_runs_against_both_servers() -> None:
    tests = {
        name: func
        for name, func in globals().items()
        if name.startswith("test_") and inspect.isfunction(func)
    }
    unbound = {
        name
        for name, func in tests.items()
        if not SERVER_FIXTURES & set(inspect.signature(func).parameters)
    }
    assert unbound == SERVERLESS, "a scenario takes no server fixture: it would run on neither"
