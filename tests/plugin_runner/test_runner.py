"""plugin-runner as a real process, with real plugin executables (small /bin/sh scripts)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.plugin_runner.conftest import MakePlugin, pid_gone

RUNNER = [sys.executable, "-m", "mandos.plugin_runner.main", "--config-file=/nonexistent"]
ROOT = os.geteuid() == 0


def run_runner(
    plugin_dir: Path, *args: str, timeout: float = 60, **kw: object
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [*RUNNER, f"--plugin-dir={plugin_dir}", *args],
        capture_output=True,
        timeout=timeout,
        start_new_session=True,  # no controlling terminal: the fallback prompt cannot block
        **kw,
    )


def pids_in(directory: Path) -> list[int]:
    return [int(p.read_text()) for p in directory.glob("*.pid")]


def test_first_success_wins_and_the_rest_are_stopped(
    make_plugin: MakePlugin, world_dir: Path, plugin_dir: Path
) -> None:
    for i in range(3):
        make_plugin(f"slow{i}", f"echo $$ > {world_dir}/slow{i}.pid; exec sleep 300")
    make_plugin("winner", f"echo $$ > {world_dir}/w.pid; sleep 0.5; printf 'pass word'")
    make_plugin("loser", "printf 'not this'; exit 1")
    r = run_runner(plugin_dir)
    assert (r.returncode, r.stdout) == (0, b"pass word")
    pids = pids_in(world_dir)
    assert len(pids) == 4
    assert all(pid_gone(p) for p in pids)


def test_failures_are_ignored_and_output_of_failures_is_dropped(
    make_plugin: MakePlugin, plugin_dir: Path
) -> None:
    make_plugin("a-fails", "printf wrong; exit 1")
    make_plugin("b-killed", "printf wrong; kill -9 $$")
    make_plugin("c-ok", "sleep 0.5; printf right")
    r = run_runner(plugin_dir, "--debug")
    assert (r.returncode, r.stdout) == (0, b"right")
    assert b"Plugin a-fails" in r.stderr
    timeline = [ln for ln in r.stderr.splitlines() if b"timeline:" in ln]
    assert len(timeline) == 1
    assert b"c-ok:won" in timeline[0]
    assert b"b-killed:signal9" in timeline[0]


def test_options_environment_and_config_file(
    make_plugin: MakePlugin, world_dir: Path, plugin_dir: Path
) -> None:
    make_plugin(
        "show",
        'printf "%s|" "$@"; printf "%s|%s|%s" "$MANDOSPLUGINHELPERDIR" "$ONE" "$TWO"',
    )
    conf = world_dir / "plugin-runner.conf"
    conf.write_text(
        "# comment line\n--global-options=--g1,--g2 # trailing comment\n"
        "--global-env=ONE=file --env-for=show:TWO=file\n--plugin-helper-dir=/helpers\n"
    )
    r = subprocess.run(
        [
            sys.executable, "-m", "mandos.plugin_runner.main", f"--config-file={conf}",
            f"--plugin-dir={plugin_dir}", "--options-for=show:--a=1:2,--b c", "-E", "show:TWO=cli",
        ],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"--g1|--g2|--a=1:2|--b c|/helpers|file|cli"


def test_skip_rules(make_plugin: MakePlugin, plugin_dir: Path) -> None:
    for name in [".hidden", "#save#", "old~", "p.dpkg-new", "p.dpkg-old", "p.dpkg-bak",
                 "p.dpkg-divert", "disabled"]:  # fmt: skip
        make_plugin(name, f"printf '{name}'")
    make_plugin("noexec", "printf noexec", mode=0o644)
    (plugin_dir / "subdir").mkdir()
    make_plugin("real", "sleep 1; printf real")
    r = run_runner(plugin_dir, "--disable=disabled")
    assert (r.returncode, r.stdout) == (0, b"real")


@pytest.mark.skipif(not ROOT, reason="changing uid needs root")
def test_plugins_run_as_the_given_ids(make_plugin: MakePlugin, plugin_dir: Path) -> None:
    make_plugin("ids", 'printf "%s:%s:%s" "$(id -u)" "$(id -g)" "$(id -G)"')
    assert run_runner(plugin_dir).stdout == b"65534:65534:65534"
    r = run_runner(plugin_dir, "--userid=1234", "--groupid=4321")
    assert r.stdout == b"1234:4321:4321"


@pytest.mark.skipif(not ROOT, reason="changing uid needs root")
def test_setuid_plugin_runs_as_its_owner(make_plugin: MakePlugin, plugin_dir: Path) -> None:
    make_plugin("ids", 'printf "%s:%s" "$(id -u)" "$(id -g)"', mode=0o4755)
    assert run_runner(plugin_dir).stdout == b"0:65534"


def test_tempfail_plugin_is_restarted(
    make_plugin: MakePlugin, world_dir: Path, plugin_dir: Path
) -> None:
    count = world_dir / "count"
    make_plugin("retry", f"echo x >> {count}; [ $(wc -l < {count}) -ge 3 ] || exit 75; printf done")
    r = run_runner(plugin_dir, "--debug")
    assert (r.returncode, r.stdout) == (0, b"done")
    assert count.read_text().count("x") == 3


def test_megabytes_of_output_do_not_block(make_plugin: MakePlugin, plugin_dir: Path) -> None:
    make_plugin("big", "head -c 900000 /dev/zero | tr '\\0' a; exit 0")
    r = run_runner(plugin_dir)
    assert (r.returncode, len(r.stdout), set(r.stdout)) == (0, 900000, {ord("a")})


def test_output_beyond_the_cap_disqualifies(make_plugin: MakePlugin, plugin_dir: Path) -> None:
    make_plugin("flood", "head -c 8000000 /dev/zero; exit 0")
    make_plugin("slow", "sleep 2; printf fine")
    r = run_runner(plugin_dir)
    assert (r.returncode, r.stdout) == (0, b"fine")
    assert b"wrote more than 1048576 bytes" in r.stderr


def test_sigterm_stops_runner_and_plugins(
    make_plugin: MakePlugin, world_dir: Path, plugin_dir: Path
) -> None:
    for i in range(2):
        make_plugin(f"p{i}", f"echo $$ > {world_dir}/p{i}.pid; exec sleep 300")
    proc = subprocess.Popen(
        [*RUNNER, f"--plugin-dir={plugin_dir}"], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while len(pids_in(world_dir)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out) == (-signal.SIGTERM, b"")
    pids = pids_in(world_dir)
    assert len(pids) == 2
    assert all(pid_gone(p) for p in pids)


def test_no_plugins_and_no_terminal_is_a_clear_error(plugin_dir: Path) -> None:
    r = run_runner(plugin_dir)
    assert r.returncode == 69
    assert r.stderr.strip().endswith(b"there is no terminal to ask on")


def test_missing_plugin_dir_is_reported_then_falls_back(world_dir: Path) -> None:
    r = run_runner(world_dir / "nope")
    assert r.returncode == 69
    assert b"cannot read plugin directory" in r.stderr


@pytest.mark.skipif(not ROOT, reason="root reads every directory")
def test_unreadable_plugin_dir_falls_back(world_dir: Path) -> None:
    d = world_dir / "locked"
    d.mkdir(mode=0o000)
    r = subprocess.run(
        [*RUNNER, f"--plugin-dir={d}"], capture_output=True, timeout=60,
        start_new_session=True, user=65534, group=65534, extra_groups=[], check=False,
    )  # fmt: skip
    assert r.returncode == 69
    assert b"Permission denied" in r.stderr


def test_bad_option_in_config_file(world_dir: Path, plugin_dir: Path) -> None:
    conf = world_dir / "bad.conf"
    conf.write_text("--debug\n--no-such-option\n")
    r = subprocess.run(
        [sys.executable, "-m", "mandos.plugin_runner.main", f"--config-file={conf}",
         f"--plugin-dir={plugin_dir}"],
        capture_output=True, timeout=60, start_new_session=True, check=False,
    )  # fmt: skip
    assert r.returncode == 64
    assert r.stderr == f"plugin-runner: {conf}: unrecognized option '--no-such-option'\n".encode()


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--version"], 0, b"plugin-runner"),
        (["--help"], 0, b"--options-for"),
        (["-?"], 0, b"--global-env"),
        (["--usage"], 0, b"[--plugin-helper-dir=DIRECTORY]"),
        (["--userid=abc"], 64, b"plugin-runner: --userid: 'abc' is not a numeric ID"),
        (["extra"], 64, b"plugin-runner: unexpected argument 'extra'"),
    ],
)
def test_exit_codes(plugin_dir: Path, args: list[str], code: int, text: bytes) -> None:
    r = run_runner(plugin_dir, *args)
    assert r.returncode == code
    assert text in r.stdout + r.stderr
