"""``mandos``: the server daemon's entry point (composition root).

Reads the command line and ``mandos.conf`` (command line wins), ``clients.conf`` and the
``clients.d/*.conf`` drop-ins, sets up logging, daemonises unless ``--foreground``/``--debug``,
then runs :class:`MandosServer`. Every
expected failure ends as one line ``mandos: message`` and a sysexits code; a traceback only
appears for bugs, or with ``--debug``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import grp
import logging
import os
import pwd
import sys
from collections.abc import Sequence
from pathlib import Path

from mandos.adapters.gnutls.session import check_priority
from mandos.adapters.memory import defer_collection, resume_collection
from mandos.adapters.socket_activation import activation_socket, keep_private
from mandos.core.config import DEFAULT_CONFIGDIR, ClientConfig, ServerConfig
from mandos.core.config_files import parse_clients_conf
from mandos.core.errors import EX_OSERR, ConfigError, MandosError, StateFileError, TLSError
from mandos.core.option_names import misspelled_options
from mandos.server.app import MandosServer
from mandos.server.args import load_server_config, parse_server_args, validate_server_config
from mandos.server.logsetup import configure_logging

log = logging.getLogger("mandos")

PID_FILE_CANDIDATES = ("/run/mandos.pid", "/var/run/mandos.pid")
PRIVILEGED_USERS = ("_mandos", "mandos")


def _read_text(path: Path, *, required: bool) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        if required:
            raise ConfigError("file not found", origin=str(path)) from None
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read: {reason}", origin=str(path)) from exc


def _read_secfile(path: str) -> bytes:
    """The secfile's bytes; an OSError is left for the parser, which names the file and line."""
    expanded = os.path.expanduser(os.path.expandvars(path))  # noqa: PTH111 - $VAR, then ~user
    return Path(expanded).read_bytes()


def clients_loader(configdir: str) -> tuple[ClientConfig, ...]:
    """Parse ``clients.conf``, then every ``clients.d/*.conf`` in lexical order.

    A missing file or directory defines no clients. A client defined in two files is an error
    naming both places.
    """
    skipped = functools.partial(log.warning, "%s")  # as Mandos 1.8.17: warn, ignore the section
    found: list[ClientConfig] = []
    where: dict[str, tuple[str, str]] = {}  # client name -> the origin and text defining it
    for path, origin in _clients_files(Path(configdir)):
        text = _read_text(path, required=False)
        if text is None:
            continue
        for warning in misspelled_options(text, str(path)):
            log.warning("%s", warning)
        for client in parse_clients_conf(text, origin, _read_secfile, skipped=skipped):
            name = client.name.value
            if name in where:
                first = _place(name, *where[name])
                message = f"client {name} is already defined at {first}"
                raise ConfigError(message, _place(name, origin, text))
            where[name] = (origin, text)
            found.append(client)
    return tuple(found)


def _place(name: str, origin: str, text: str) -> str:
    """``origin:line`` of client ``name``'s section header in ``text`` (only for an error)."""
    return f"{origin}:{_section_lines(text).get(name, 1)}"


def _clients_files(configdir: Path) -> list[tuple[Path, str]]:
    """clients.conf, then the clients.d drop-ins (``*.conf``, lexical order), with origins."""
    files = [(configdir / "clients.conf", "clients.conf")]
    try:  # not glob(): it would silently skip a directory it cannot read
        names = [p.name for p in (configdir / "clients.d").iterdir()]
    except FileNotFoundError:
        names = []
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", origin="clients.d") from exc
    drop_ins = sorted(n for n in names if n.endswith(".conf") and not n.startswith("."))
    files += [(configdir / "clients.d" / name, f"clients.d/{name}") for name in drop_ins]
    return files


def _section_lines(text: str) -> dict[str, int]:
    """Section name -> the line number of its ``[name]`` header, in one pass over ``text``."""
    found: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            found.setdefault(stripped[1:-1], number)
    return found


def load_config(argv: Sequence[str] | None) -> ServerConfig:
    """Defaults, then mandos.conf, then the command line."""
    args = parse_server_args(sys.argv[1:] if argv is None else argv)
    if args.check:
        raise _CheckOnly
    configdir = args.configdir or DEFAULT_CONFIGDIR
    conf_text = _read_text(Path(configdir) / "mandos.conf", required=False)
    config = load_server_config(conf_text, args)
    passed = activation_socket(os.environ, os.getpid())  # systemd's, unless --socket says
    if config.socket is None and passed is not None:
        config = dataclasses.replace(config, socket=passed)
    if config.socket is not None:
        keep_private(config.socket)
    validate_server_config(config)
    try:
        check_priority(config.priority)
    except TLSError as exc:
        raise ConfigError(f"priority: {exc}") from exc
    return config


def unprivileged_user() -> pwd.struct_passwd | None:
    """The user a root server drops to (``_mandos``, else ``mandos``); None if it stays."""
    if os.getuid() != 0:
        return None
    for name in PRIVILEGED_USERS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    return None


def drop_privileges(user: pwd.struct_passwd | None) -> None:
    """Become ``user`` (from :func:`unprivileged_user`); a refusal is logged, not fatal."""
    if user is None:
        return
    try:
        _become(user)
    except PermissionError:
        log.warning("Failed to change to user %s", user.pw_name)
    else:
        log.debug("Running as %s (%s)", user.pw_name, grp.getgrgid(user.pw_gid).gr_name)


def _become(user: pwd.struct_passwd) -> None:
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)


def make_statedir(statedir: str, user: pwd.struct_passwd | None) -> None:
    """Create a missing state directory (0700), owned by the user the server will run as."""
    path = Path(statedir)
    if path.is_dir():
        return
    try:
        path.mkdir(mode=0o700, parents=True)
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StateFileError(f"cannot create state directory {path}: {exc.strerror}") from exc


def check_statedir(statedir: str, user: pwd.struct_passwd | None) -> None:
    """Refuse to start when the user the server will run as could never save its state.

    Checked before daemonising, so that the refusal reaches the terminal (or the journal).
    """
    if _writable_as(statedir, user):
        return
    who = f"user {user.pw_name}" if user is not None else "this user"
    raise StateFileError(f"state directory {statedir} is not writable by {who}")


def _writable_as(path: str, user: pwd.struct_passwd | None) -> bool:
    if user is None:
        return os.access(path, os.W_OK | os.X_OK)
    pid = os.fork()
    if pid == 0:  # the child becomes the user, looks, and answers with its exit status
        code = 1
        try:
            _become(user)
            code = 0 if os.access(path, os.W_OK | os.X_OK) else 1
        except BaseException:  # noqa: S110 - the parent reads any failure as "no"
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def daemonize() -> None:
    """Detach: double fork, new session, cwd /, standard streams on /dev/null."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def write_pid_file() -> Path | None:
    """Write our PID to /run/mandos.pid (or /var/run); None if neither is writable."""
    for candidate in PID_FILE_CANDIDATES:
        path = Path(candidate)
        if path.parent.is_dir():
            try:
                path.write_text(f"{os.getpid()}\n")
            except OSError as exc:
                log.warning("Could not write PID file %s: %s", path, exc.strerror)
                return None
            return path
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server; returns the process exit status."""
    config: ServerConfig | None = None
    try:
        config = load_config(argv)
        configure_logging(config)
        defer_collection()  # until the registry is built: see adapters/memory.py
        clients = clients_loader(config.configdir)  # fail fast, before daemonising
        user = unprivileged_user()
        make_statedir(config.statedir, user)
        check_statedir(config.statedir, user)
        server = MandosServer(config, lambda: clients_loader(config.configdir), clients=clients)
        server.on_rename = lambda name: configure_logging(
            dataclasses.replace(config, servicename=name)
        )
        pid_file = None
        if not (config.foreground or config.debug):
            daemonize()
            pid_file = write_pid_file()
        drop_privileges(user)
        try:
            asyncio.run(server.run())
        finally:
            if pid_file is not None:
                with contextlib.suppress(OSError):
                    pid_file.unlink()
    except MandosError as exc:
        if config is not None and config.debug:
            log.exception("Fatal error")
        print(f"mandos: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"mandos: {exc.strerror or exc}", file=sys.stderr)
        return EX_OSERR
    except _CheckOnly:
        return 0  # the reference's --check runs its self-tests; ours live in the test suite
    except KeyboardInterrupt:
        return 130
    finally:
        resume_collection()
    return 0


class _CheckOnly(Exception):
    """--check was given: nothing to run."""


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
