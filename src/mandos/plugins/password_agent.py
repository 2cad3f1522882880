"""password-agent: answer systemd's password questions with the password mandos-client gets.

REFERENCE A15 and systemd's Password Agents specification: a question is a file ``ask.*`` in
the agent directory (``/run/systemd/ask-password``) with an ``[Ask]`` section naming a datagram
``Socket=``, the asker's ``PID=`` and ``NotAfter=`` (CLOCK_MONOTONIC microseconds, 0 = never).
The answer is one datagram ``+PASSWORD``.
- While an open question exists, MANDOS_CLIENT runs (real uid/gid set to --user/--group, as the
  reference does; the effective ids stay, since the client raises privileges itself) with
  ``MANDOSPLUGINHELPERDIR`` set. Its output, once it exits 0, is sent to every open question,
  and the agent exits 0. Deleted, expired, orphaned and already answered questions are skipped.
- If every question disappears first (answered elsewhere), the client is stopped and the agent
  keeps waiting. A client exiting with EX_TEMPFAIL is restarted after a second; any other
  failure ends the agent with EX_UNAVAILABLE.
- The directory is rescanned every quarter second (the reference uses inotify; a stdlib program
  in an initramfs polls a tiny directory for the same effect).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mandos.core.errors import EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE, UsageError
from mandos.initramfs import argp
from mandos.initramfs.process import StopRequested, die_by_signal, stop_signals_raise

PROG = "password-agent"
DEFAULT_AGENT_DIR = "/run/systemd/ask-password"
DEFAULT_HELPER_DIR = "/lib/mandos/plugin-helpers"
DEFAULT_CLIENT = "/lib/mandos/plugins.d/mandos-client"
POLL_SECONDS = 0.25
MAX_PASSWORD = 1 << 20
OPTIONS = (
    argp.Opt("agent-directory", None, True, "Systemd password agent directory", "DIRECTORY"),
    argp.Opt("helper-directory", None, True, "Mandos plugin helper directory", "DIRECTORY"),
    argp.Opt("user", None, True, "User ID the client will run as", "ID"),
    argp.Opt("group", None, True, "Group ID the client will run as", "ID"),
    argp.Opt("debug", None, False, "Debug mode"),
    argp.Opt("test", None, False, "Check the setup and exit"),
    argp.Opt("help", "?", False, "Give this help list"),
    argp.Opt("usage", None, False, "Give a short usage message"),
    argp.Opt("version", "V", False, "Print program version"),
)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The agent's options and the client's command line."""

    agent_dir: str = DEFAULT_AGENT_DIR
    helper_dir: str = DEFAULT_HELPER_DIR
    user: int = 65534
    group: int = 65534
    client: tuple[str, ...] = (DEFAULT_CLIENT,)
    debug: bool = False
    action: str = "run"


@dataclass(frozen=True, slots=True)
class Question:
    """One open password question."""

    path: str
    socket: str
    pid: int
    not_after: int  # CLOCK_MONOTONIC microseconds; 0 = no limit
    message: str


def parse_args(argv: Sequence[str]) -> AgentConfig:
    """Options first; the first non-option (or what follows ``--``) is the client command."""
    parsed = argp.parse(OPTIONS, argv, in_order=True, stop_at=argp.INFO_OPTIONS)
    values: dict[str, str | None] = dict(parsed.options)
    ids = {"user": 65534, "group": 65534}
    for key in ids:
        if (raw := values.get(key)) is not None:
            ids[key] = argp.numeric_id(raw, f"--{key}")
    action = argp.info_request(parsed) or ("test" if "test" in values else "run")
    return AgentConfig(
        agent_dir=values.get("agent-directory") or DEFAULT_AGENT_DIR,
        helper_dir=values.get("helper-directory") or DEFAULT_HELPER_DIR,
        user=ids["user"],
        group=ids["group"],
        client=parsed.positionals or (DEFAULT_CLIENT,),
        debug="debug" in values,
        action=action,
    )


def parse_ask(path: str, text: str) -> Question | None:
    """The question an ask file holds, or None if it has no usable ``[Ask]`` Socket."""
    section = ""
    fields: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Ask" and "=" in line:
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip()
    sock = fields.get("Socket", "")
    if not sock.startswith("/"):
        return None
    try:
        pid = int(fields.get("PID", "0"))
        not_after = int(fields.get("NotAfter", "0"))
    except ValueError:
        return None
    return Question(path, sock, pid, not_after, fields.get("Message", ""))


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_questions(agent_dir: str, answered: set[tuple[str, str]]) -> list[Question]:
    """The questions in ``agent_dir`` that are still worth answering."""
    now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    found: list[Question] = []
    try:
        names = sorted(e.name for e in Path(agent_dir).iterdir())
    except OSError:
        return []
    for name in names:
        if not name.startswith("ask."):
            continue
        path = str(Path(agent_dir) / name)
        try:
            q = parse_ask(path, Path(path).read_text(errors="replace"))
        except OSError:
            continue  # deleted (or renamed) under our feet
        if q is None or (q.path, q.socket) in answered:
            continue
        if (q.not_after and now_us > q.not_after) or not _alive(q.pid):
            continue
        found.append(q)
    return found


def answer(question: Question, password: bytes) -> bool:
    """Send ``+PASSWORD`` to the question's socket; False if nobody listens any more."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            s.sendto(b"+" + password, question.socket)
        except OSError:
            return False
    return True


class _Client:
    """One run of MANDOS_CLIENT with its stdout collected through a pipe."""

    def __init__(self, config: AgentConfig) -> None:
        env = dict(os.environ, MANDOSPLUGINHELPERDIR=config.helper_dir)
        self.proc = subprocess.Popen(  # noqa: S603 - the admin's configured client
            list(config.client),
            stdout=subprocess.PIPE,
            env=env,
            preexec_fn=_real_ids(config) if os.geteuid() == 0 else None,
        )
        assert self.proc.stdout is not None
        self.out_fd = self.proc.stdout.fileno()
        os.set_blocking(self.out_fd, False)
        self.pidfd = os.pidfd_open(self.proc.pid)
        self.chunks: list[bytes] = []
        self.size = 0

    def wait(self, seconds: float) -> bool:
        """Collect output for up to ``seconds``; True once the client has exited."""
        with selectors.DefaultSelector() as sel:
            sel.register(self.out_fd, selectors.EVENT_READ)
            sel.register(self.pidfd, selectors.EVENT_READ)
            ready = {key.fd for key, _ in sel.select(seconds)}
        if self.out_fd in ready:
            self.read()
        return self.pidfd in ready

    def read(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self.out_fd, 65536):
                self.size += len(data)
                if self.size <= MAX_PASSWORD:
                    self.chunks.append(data)

    def finish(self) -> int:
        code = self.proc.wait()
        self.read()
        self.close()
        return code if self.size <= MAX_PASSWORD else EX_UNAVAILABLE

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.close()

    def close(self) -> None:
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        with contextlib.suppress(OSError):
            os.close(self.pidfd)


def _real_ids(config: AgentConfig) -> Callable[[], None]:
    def drop() -> None:
        os.setgroups([])
        os.setresgid(config.group, -1, -1)
        os.setresuid(config.user, -1, -1)

    return drop


def serve(config: AgentConfig) -> int:
    """Wait for questions, get the password from the client, answer them all."""
    answered: set[tuple[str, str]] = set()
    client: _Client | None = None
    restart_at = 0.0

    def say(msg: str) -> None:
        if config.debug:
            sys.stderr.write(f"{PROG}: {msg}\n")

    try:
        while True:
            questions = open_questions(config.agent_dir, answered)
            if client is not None and not questions:
                say("no open questions left; stopping the client")
                client.stop()
                client = None
            if client is None and questions and time.monotonic() >= restart_at:
                say(f"{len(questions)} open question(s); starting {config.client[0]}")
                client = _Client(config)
            if client is None:
                time.sleep(POLL_SECONDS)
                continue
            if not client.wait(POLL_SECONDS):
                continue
            code = client.finish()  # reads the rest of its output
            password = b"".join(client.chunks)
            client = None
            if code == EX_TEMPFAIL:
                restart_at = time.monotonic() + 1.0
                continue
            if code != 0:
                sys.stderr.write(f"{PROG}: {config.client[0]} failed with status {code}\n")
                return EX_UNAVAILABLE
            _answer_all(config, answered, password, say)
            return EX_OK
    finally:
        if client is not None:
            client.stop()


def _answer_all(
    config: AgentConfig,
    answered: set[tuple[str, str]],
    password: bytes,
    say: Callable[[str], None],
) -> None:
    """Give ``password`` to every question open now, and remember them as answered."""
    for q in open_questions(config.agent_dir, answered):
        ok = answer(q, password)
        answered.add((q.path, q.socket))
        say(f"answered {Path(q.path).name}" if ok else f"{q.socket} went away")


def self_test(config: AgentConfig) -> int:
    """--test: report whether the directory and client are usable."""
    dir_ok = Path(config.agent_dir).is_dir()
    client_ok = os.access(config.client[0], os.X_OK)
    sys.stdout.write(f"agent directory {config.agent_dir}: {'ok' if dir_ok else 'missing'}\n")
    sys.stdout.write(f"client {config.client[0]}: {'ok' if client_ok else 'not executable'}\n")
    return EX_OK if dir_ok and client_ok else EX_UNAVAILABLE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns a sysexits code."""
    try:
        config = parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return exc.exit_code
    if config.action in argp.INFO_OPTIONS:
        summary = "Mandos password agent -- runs the Mandos client as a systemd password agent"
        args_doc = "[--] [MANDOS_CLIENT [OPTION...]]"
        sys.stdout.write(argp.info_text(config.action, PROG, summary, OPTIONS, args_doc))
        return EX_OK
    if config.action == "test":
        return self_test(config)
    try:
        with stop_signals_raise():
            return serve(config)
    except StopRequested as stop:
        die_by_signal(stop.signum)
    except OSError as exc:
        sys.stderr.write(f"{PROG}: {exc.strerror or exc}\n")
        return EX_UNAVAILABLE


def entry() -> None:
    """Console-script entry."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
