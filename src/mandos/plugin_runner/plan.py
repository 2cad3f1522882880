"""What plugin-runner will do, decided without I/O: options, config file, plugin choice, argv, env.

Rules (REFERENCE A13):
- The config file holds whitespace-separated arguments with ``#`` comments; it is parsed before
  the command line, and a ``--config-file`` inside it is ignored.
- ``--options-for`` and ``--env-for`` split at the first colon; options are comma-separated,
  never split on whitespace. Per-plugin environment wins over ``--global-env``.
- Plugin names matching the skip patterns, non-regular and non-executable files, and disabled
  plugins are not run. Plugins start in name order.
- Beyond the reference: a setuid (setgid) plugin file runs as the file's owner (group) instead of
  ``--userid`` (``--groupid``). The kernel ignores those bits on interpreted scripts, so the
  runner honours them itself; this is how the Python plugins that need root get it.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from mandos.core.errors import UsageError
from mandos.initramfs.argp import INFO_OPTIONS, Opt, numeric_id, parse
from mandos.initramfs.plugindir import is_skipped_name

DEFAULT_UID: Final = 65534
DEFAULT_GID: Final = 65534
DEFAULT_PLUGIN_DIR: Final = "/lib/mandos/plugins.d"
DEFAULT_PLUGIN_HELPER_DIR: Final = "/lib/mandos/plugin-helpers"
DEFAULT_CONFIG_FILE: Final = "/conf/conf.d/mandos/plugin-runner.conf"
HELPER_DIR_ENV: Final = "MANDOSPLUGINHELPERDIR"

OPTIONS: Final = (
    Opt("global-env", "G", True, "Environment variable for all plugins", "ENV=value"),
    Opt("env-for", "E", True, "Environment variable for one plugin", "PLUGIN:ENV=value"),
    Opt("global-options", "g", True, "Options passed to all plugins", "OPTION[,OPTION[,...]]"),
    Opt("options-for", "o", True, "Options passed to one plugin", "PLUGIN:OPTION[,...]"),
    Opt("disable", "d", True, "Disable a specific plugin", "PLUGIN"),
    Opt("enable", "e", True, "Enable a specific plugin", "PLUGIN"),
    Opt("plugin-dir", None, True, "Specify a different plugin directory", "DIRECTORY"),
    Opt("plugin-helper-dir", None, True, "Specify a different helper directory", "DIRECTORY"),
    Opt("config-file", None, True, "Specify a different configuration file", "FILE"),
    Opt("userid", None, True, "User ID the plugins will run as", "ID"),
    Opt("groupid", None, True, "Group ID the plugins will run as", "ID"),
    Opt("debug", None, False, "Debug mode"),
    Opt("help", "?", False, "Give this help list"),
    Opt("usage", None, False, "Give a short usage message"),
    Opt("version", "V", False, "Print program version"),
)

Action = Literal["run", "help", "usage", "version"]


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """Everything the command line and config file say, with the reference's defaults."""

    global_env: tuple[tuple[str, str], ...] = ()
    env_for: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    global_options: tuple[str, ...] = ()
    options_for: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    disabled: frozenset[str] = frozenset()
    userid: int = DEFAULT_UID
    groupid: int = DEFAULT_GID
    plugin_dir: str = DEFAULT_PLUGIN_DIR
    plugin_helper_dir: str = DEFAULT_PLUGIN_HELPER_DIR
    config_file: str = DEFAULT_CONFIG_FILE
    debug: bool = False
    action: Action = "run"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A directory entry that might be a plugin, as stat() described it."""

    name: str
    path: str
    mode: int
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one plugin: its argv, environment additions and credentials."""

    name: str
    path: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    uid: int
    gid: int


def split_config_text(text: str) -> list[str]:
    """The arguments of a config file: whitespace-separated words, ``#`` starts a comment."""
    words: list[str] = []
    for line in text.splitlines():
        words.extend(line.partition("#")[0].split())
    return words


def config_file_from_argv(argv: Sequence[str]) -> str:
    """The ``--config-file`` the command line names (last one wins), else the default."""
    result = DEFAULT_CONFIG_FILE
    for key, value in parse(OPTIONS, argv).options:
        if key == "config-file" and value is not None:
            result = value
    return result


def _env_pair(text: str, what: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name:
        raise UsageError(f"{what}: {text!r} is not ENV=value")
    return name, value


def _plugin_split(text: str, what: str) -> tuple[str, str]:
    plugin, colon, rest = text.partition(":")
    if not colon or not plugin:
        raise UsageError(f"{what}: {text!r} is not PLUGIN:...")
    return plugin, rest


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split(",") if part)


class _Collected:
    """What the options said so far, in the order they came (the last word wins)."""

    def __init__(self) -> None:
        self.global_env: list[tuple[str, str]] = []
        self.env_for: dict[str, list[tuple[str, str]]] = {}
        self.global_options: list[str] = []
        self.options_for: dict[str, list[str]] = {}
        self.disabled: set[str] = set()
        self.values: dict[str, object] = {}
        self.action: Action = "run"

    def apply(self, key: str, arg: str, in_file: bool) -> None:
        """Take one option (``arg`` is "" for a flag); a config file's --config-file is ignored."""
        match key:
            case "global-env":
                self.global_env.append(_env_pair(arg, "--global-env"))
            case "env-for":
                plugin, rest = _plugin_split(arg, "--env-for")
                self.env_for.setdefault(plugin, []).append(_env_pair(rest, "--env-for"))
            case "global-options":
                self.global_options.extend(_comma_list(arg))
            case "options-for":
                plugin, rest = _plugin_split(arg, "--options-for")
                self.options_for.setdefault(plugin, []).extend(_comma_list(rest))
            case "disable":
                self.disabled.add(arg)
            case "enable":
                self.disabled.discard(arg)
            case "userid" | "groupid":
                self.values[key] = numeric_id(arg, f"--{key}")
            case "plugin-dir" | "plugin-helper-dir":
                self.values[key.replace("-", "_")] = arg
            case "config-file":
                if not in_file:
                    self.values["config_file"] = arg
            case "debug":
                self.values["debug"] = True
            case "help" | "usage" | "version":
                self.action = key
            case _:  # pragma: no cover - OPTIONS and this match are kept in step
                raise AssertionError(key)

    def config(self) -> RunnerConfig:
        """The RunnerConfig these options make, with the reference's defaults for the rest."""
        v = self.values
        return RunnerConfig(
            global_env=tuple(self.global_env),
            env_for={k: tuple(e) for k, e in self.env_for.items()},
            global_options=tuple(self.global_options),
            options_for={k: tuple(o) for k, o in self.options_for.items()},
            disabled=frozenset(self.disabled),
            userid=int(str(v.get("userid", DEFAULT_UID))),
            groupid=int(str(v.get("groupid", DEFAULT_GID))),
            plugin_dir=str(v.get("plugin_dir", DEFAULT_PLUGIN_DIR)),
            plugin_helper_dir=str(v.get("plugin_helper_dir", DEFAULT_PLUGIN_HELPER_DIR)),
            config_file=str(v.get("config_file", DEFAULT_CONFIG_FILE)),
            debug=bool(v.get("debug", False)),
            action=self.action,
        )


def build_config(file_args: Sequence[str], cli_args: Sequence[str]) -> RunnerConfig:
    """Merge config-file arguments, then command-line arguments, into a RunnerConfig."""
    from_file = parse(OPTIONS, file_args)
    from_cli = parse(OPTIONS, cli_args, stop_at=INFO_OPTIONS)
    if from_file.positionals or from_cli.positionals:
        extra = (from_file.positionals + from_cli.positionals)[0]
        raise UsageError(f"unexpected argument {extra!r}")
    collected = _Collected()
    for key, value in from_file.options:
        collected.apply(key, value or "", in_file=True)
    for key, value in from_cli.options:
        collected.apply(key, value or "", in_file=False)
    return collected.config()


def skip_reason(candidate: Candidate, disabled: frozenset[str]) -> str | None:
    """Why this entry is not run, or None if it is a plugin to start."""
    if is_skipped_name(candidate.name):
        return "ignored name"
    if not stat.S_ISREG(candidate.mode):
        return "not a regular file"
    if not candidate.mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        return "not executable"
    if candidate.name in disabled:
        return "disabled"
    return None


def plan_launches(candidates: Iterable[Candidate], config: RunnerConfig) -> list[Launch]:
    """The plugins to start, in name order, with their argv, environment and credentials."""
    launches: list[Launch] = []
    for cand in sorted(candidates, key=lambda c: c.name):
        if skip_reason(cand, config.disabled) is not None:
            continue
        argv = (cand.name, *config.global_options, *config.options_for.get(cand.name, ()))
        env = (
            (HELPER_DIR_ENV, config.plugin_helper_dir),
            *config.global_env,
            *config.env_for.get(cand.name, ()),
        )
        uid = cand.uid if cand.mode & stat.S_ISUID else config.userid
        gid = cand.gid if cand.mode & stat.S_ISGID else config.groupid
        launches.append(Launch(cand.name, cand.path, argv, env, uid, gid))
    return launches


def merged_env(base: Mapping[str, str], launch: Launch) -> dict[str, str]:
    """The plugin's whole environment: the runner's, then the plan's additions in order."""
    env = dict(base)
    env.update(launch.env)
    return env
