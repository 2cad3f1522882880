"""The pure part of plugin-runner: options, config file, skip rules, argv and environment."""

from __future__ import annotations

import contextlib
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mandos.core.errors import UsageError
from mandos.plugin_runner.plan import (
    DEFAULT_CONFIG_FILE,
    Candidate,
    RunnerConfig,
    build_config,
    config_file_from_argv,
    merged_env,
    plan_launches,
    skip_reason,
    split_config_text,
)

REG = stat.S_IFREG | 0o755


def test_defaults_are_the_references() -> None:
    c = build_config([], [])
    assert (c.userid, c.groupid) == (65534, 65534)
    assert c.plugin_dir == "/lib/mandos/plugins.d"
    assert c.plugin_helper_dir == "/lib/mandos/plugin-helpers"
    assert c.config_file == "/conf/conf.d/mandos/plugin-runner.conf"
    assert not c.debug
    assert c.action == "run"


def test_config_text_words_and_comments() -> None:
    text = "--debug # a comment --userid=1\n  --options-for=x:a,b\t-d y\n#only comment\n"
    assert split_config_text(text) == ["--debug", "--options-for=x:a,b", "-d", "y"]


def test_file_first_then_command_line() -> None:
    c = build_config(["--userid=10", "--disable=a", "--plugin-dir=/f"], ["--userid=20", "-e", "a"])
    assert c.userid == 20
    assert c.disabled == frozenset()
    assert c.plugin_dir == "/f"


def test_config_file_inside_file_is_ignored() -> None:
    assert build_config(["--config-file=/x"], []).config_file == DEFAULT_CONFIG_FILE
    assert build_config([], ["--config-file=/y"]).config_file == "/y"
    assert config_file_from_argv(["--config-file", "/z", "--debug"]) == "/z"


def test_options_split_at_first_colon_and_commas_only() -> None:
    c = build_config(
        [], ["--options-for=mandos-client:--connect=[::1]:4711,--debug", "-o", "p:a b"]
    )
    assert c.options_for["mandos-client"] == ("--connect=[::1]:4711", "--debug")
    assert c.options_for["p"] == ("a b",)
    assert build_config([], ["-g", "--debug,,--x"]).global_options == ("--debug", "--x")


def test_argv_and_env_of_a_launch() -> None:
    c = build_config(
        ["-G", "A=file", "--env-for=p:B=one"],
        [
            "--global-env=A=cli",
            "-E",
            "p:A=mine",
            "-g",
            "--g1",
            "-o",
            "p:--o1",
            "--plugin-helper-dir=/h",
        ],
    )
    [launch] = plan_launches([Candidate("p", "/d/p", REG, 0, 0)], c)
    assert launch.argv == ("p", "--g1", "--o1")
    env = merged_env({"PATH": "/bin", "A": "base"}, launch)
    assert env == {"PATH": "/bin", "A": "mine", "B": "one", "MANDOSPLUGINHELPERDIR": "/h"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--global-env=NOEQUALS"],
        ["--env-for=nocolon"],
        ["--options-for=nocolon"],
        ["--userid=nobody"],
        ["--groupid=-1"],
        ["--bogus"],
        ["stray"],
        ["--userid"],
        ["--debug=yes"],
    ],
)
def test_bad_options_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        build_config([], argv)


def test_skip_reasons() -> None:
    off = frozenset({"d"})
    assert skip_reason(Candidate("ok", "/ok", REG, 0, 0), off) is None
    assert skip_reason(Candidate("d", "/d", REG, 0, 0), off) == "disabled"
    assert skip_reason(Candidate("n", "/n", stat.S_IFREG | 0o644, 0, 0), off) == "not executable"
    assert (
        skip_reason(Candidate("x", "/x", stat.S_IFDIR | 0o755, 0, 0), off) == "not a regular file"
    )
    assert skip_reason(Candidate("y", "/y", stat.S_IFREG | 0o010, 0, 0), off) is None


def test_setuid_and_setgid_plugins_run_as_the_file_owner() -> None:
    c = RunnerConfig(userid=1000, groupid=1001)
    cands = [
        Candidate("b-suid", "/b", REG | stat.S_ISUID, 0, 7),
        Candidate("a-plain", "/a", REG, 5, 6),
        Candidate("c-sgid", "/c", REG | stat.S_ISGID, 3, 4),
    ]
    ids = [(ln.name, ln.uid, ln.gid) for ln in plan_launches(cands, c)]
    assert ids == [("a-plain", 1000, 1001), ("b-suid", 0, 1001), ("c-sgid", 1000, 4)]


@given(st.text())
def test_config_text_never_crashes(text: str) -> None:
    words = split_config_text(text)
    assert all(w and "#" not in w and not any(c.isspace() for c in w) for w in words)
    with contextlib.suppress(UsageError):
        build_config(words, [])
