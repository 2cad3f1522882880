"""Debian's real Mandos 1.8.16 as test partners: fetch, keygen, private bus, server, client.

Rules of this module:
- The reference programs are test partners, never dependencies: they are fetched with
  `apt-get download` into a gitignored cache and run from the unpacked tree, never installed.
- Every process started here is ended by PID, with its whole session (the reference server
  forks handler children that hold the port), and any gpg-agent it spawned is found by a
  per-run marker in its environment (`MANDOS_TEST_TAG`) and ended too. Nothing is killed by name.
- The reference server drops privileges to nobody (65534) before it connects to the system bus
  and before it writes its state, so its bus socket and state directory live in world-traversable
  directories under /tmp, not under pytest's private tmp_path.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.keyfiles import client_key_args
from tests.ports import free_port
from tests.procs import processes

VERSION = "1.8.16-1"
PACKAGES = ("mandos", "mandos-client")
REPO_ROOT = Path(__file__).resolve().parents[2]
TAG_VAR = "MANDOS_TEST_TAG"
NOBODY = 65534
SERVER = "usr/sbin/mandos"
KEYGEN = "usr/sbin/mandos-keygen"
_PY = "/usr/bin/python3"  # Debian's interpreter: it has python3-dbus and python3-gi
# The console format of `mandos --debug`: "%(asctime)s %(name)s [pid]: LEVEL: msg".
_LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ mandos \[(\d+)\]: "
    r"(DEBUG|INFO|WARNING|ERROR|CRITICAL): (.*)$"
)
# mandos-keygen writes --type/--subtype verbatim into a gpg batch file; gpg needs a curve line
# for ECC keys, which the script has no option for, so the curve rides along in the type word.
_PRIMARY_WORDS = {"ed25519": "EDDSA\nKey-Curve: ed25519"}
_SUBKEY_WORDS = {"cv25519": "ECDH\nSubkey-Curve: cv25519"}


class ReferenceUnavailable(RuntimeError):
    """The reference packages could not be fetched, or their runtime dependencies are missing."""


class ReferenceFailure(RuntimeError):
    """A reference program failed in a way the harness cannot hide (bad exit, no listen)."""


# --------------------------------------------------------------------------- processes


def _alive(pids: set[int]) -> set[int]:
    return {p.pid for p in processes() if p.pid in pids and p.state != "Z"}


def _end_pids(pids: set[int], grace: float = 3.0) -> None:
    """SIGTERM each PID, then SIGKILL whatever is still alive after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        pids = _alive(pids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = _alive(pids)
        if not pids:
            return


def end_session(sid: int, grace: float = 3.0) -> None:
    """End every live process of session `sid` (a process we started with start_new_session)."""
    for _ in range(3):  # members may fork while we look
        members = {p.pid for p in processes() if p.sid == sid and p.state != "Z"}
        if not members:
            return
        _end_pids(members, grace)


def reap_tagged_agents(tag: str) -> list[int]:
    """End the gpg-agents whose environment carries `MANDOS_TEST_TAG=tag`; remove their homedirs
    when those are a reference client's leftover /tmp/mandosXXXXXX or /run/tmp/mandosXXXXXX."""
    marker = f"{TAG_VAR}={tag}".encode()
    found: dict[int, Path | None] = {}
    home: Path | None
    for p in processes():
        if p.comm != "gpg-agent" or p.state == "Z":
            continue
        try:
            environ = Path(f"/proc/{p.pid}/environ").read_bytes().split(b"\0")
            argv = Path(f"/proc/{p.pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if marker in environ:
            home = Path(argv[argv.index("--homedir") + 1]) if "--homedir" in argv else None
            found[p.pid] = home
    _end_pids(set(found))
    for home in found.values():
        if (
            home
            and home.parent in (Path("/tmp"), Path("/run/tmp"))
            and home.name.startswith("mandos")
        ):
            shutil.rmtree(home, ignore_errors=True)
    return sorted(found)


@dataclass
class Bounded:
    """Outcome of a program run under a deadline."""

    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool


def run_bounded(
    argv: Sequence[str | Path], *, env: Mapping[str, str], timeout: float, cwd: Path | None = None
) -> Bounded:
    """Run argv in a new session; at the deadline SIGTERM (then SIGKILL) the whole session."""
    proc = subprocess.Popen(
        [str(a) for a in argv],
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        end_session(proc.pid)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            end_session(proc.pid)
            proc.wait(timeout=30)
    end_session(proc.pid)  # children it left behind in its session
    return Bounded(proc.returncode, out, err, timed_out)


# --------------------------------------------------------------------------- fetching


def cache_dir() -> Path:
    """Where the unpacked reference lives: $MANDOS_TEST_CACHE, else <repo>/.cache (gitignored)."""
    base = os.environ.get("MANDOS_TEST_CACHE")
    return (Path(base) if base else REPO_ROOT / ".cache") / "reference" / VERSION


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive fcntl lock on `path` (created if needed) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _download(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}={VERSION}" for name in PACKAGES]
    result = None
    for attempt in range(2):
        if attempt:
            subprocess.run(
                ["apt-get", "update", "-q"], capture_output=True, timeout=900, check=False
            )
        result = subprocess.run(
            ["apt-get", "download", *specs], cwd=dest, capture_output=True, text=True, timeout=900
        )
        if result.returncode == 0:
            break
    else:
        detail = result.stderr.strip().splitlines()[-1:] if result else []
        raise ReferenceUnavailable(f"apt-get download {' '.join(specs)} failed: {detail}")
    return [next(dest.glob(f"{name}_{VERSION}_*.deb")) for name in PACKAGES]


def reference_root() -> Path:
    """The unpacked Debian packages (downloaded and unpacked once, under a lock)."""
    base = cache_dir()
    root, done = base / "root", base / "unpacked"
    if not done.exists():
        with file_lock(base / ".lock"):
            if not done.exists():
                tmp = Path(tempfile.mkdtemp(prefix="root.", dir=base))
                for deb in _download(base / "debs"):
                    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True, timeout=300)
                shutil.rmtree(root, ignore_errors=True)
                tmp.rename(root)
                done.write_text(f"{' '.join(PACKAGES)} {VERSION}\n")
    _check_runtime(root)
    return root


def client_program(root: Path) -> Path:
    """The real mandos-client plugin binary in the unpacked tree."""
    return next(root.glob("usr/lib/*/mandos/plugins.d/mandos-client"))


def helper_dir(root: Path) -> Path:
    """The plugin-helpers directory (MANDOSPLUGINHELPERDIR) in the unpacked tree."""
    return next(root.glob("usr/lib/*/mandos/plugin-helpers"))


@functools.cache
def _check_runtime(root: Path) -> None:
    problems: list[str] = []
    for binary in [client_program(root), *helper_dir(root).iterdir()]:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
        problems += [
            f"{binary.name}: {ln.strip()}" for ln in out.stdout.splitlines() if "not found" in ln
        ]
    probe = subprocess.run([_PY, "-I", "-c", "import dbus, gi"], capture_output=True, check=False)
    if probe.returncode:
        problems.append(f"{_PY} cannot import dbus and gi (python3-dbus, python3-gi)")
    problems += [
        f"{tool} not on PATH"
        for tool in ("certtool", "gpg", "dbus-daemon")
        if not shutil.which(tool)
    ]
    if problems:
        raise ReferenceUnavailable("run scripts/install-deps; " + "; ".join(problems))


# --------------------------------------------------------------------------- keygen


@dataclass(frozen=True)
class KeygenResult:
    """Key files written by the real mandos-keygen, and the clients.conf section it printed."""

    keydir: Path
    section_text: str | None

    def value(self, key: str) -> str:
        """The single-line value of `key` in the printed section (e.g. key_id, fingerprint)."""
        assert self.section_text is not None, "keygen ran without a password"
        for line in self.section_text.splitlines():
            name, sep, val = line.partition("=")
            if sep and name.strip() == key:
                return val.strip()
        raise KeyError(key)


def _run_keygen(args: Sequence[str | Path], timeout: float) -> str:
    tag = secrets.token_hex(8)
    tmp = Path(tempfile.mkdtemp(prefix="mandos-ref-keygen-"))
    env = {**os.environ, "TMPDIR": str(tmp), TAG_VAR: tag}
    try:
        done = run_bounded(
            ["/bin/sh", "-e", reference_root() / KEYGEN, *args], env=env, timeout=timeout
        )
    finally:
        reap_tagged_agents(tag)
        shutil.rmtree(tmp, ignore_errors=True)
    if done.returncode != 0 or done.timed_out:
        why = "timed out" if done.timed_out else f"exited {done.returncode}"
        raise ReferenceFailure(
            f"mandos-keygen {why}: {done.stderr.decode(errors='replace')[-2000:]}"
        )
    return done.stdout.decode()


def reference_password(
    keydir: Path, password: bytes, *, name: str = "client1", timeout: float = 120
) -> str:
    """The clients.conf section the real `mandos-keygen --passfile` prints for `password`."""
    with tempfile.TemporaryDirectory(prefix="mandos-ref-pass-") as tmp:
        passfile = Path(tmp) / "password"
        passfile.touch(mode=0o600)
        passfile.write_bytes(password)
        return _run_keygen(
            ["--dir", keydir, "--no-ssh", "--passfile", passfile, "--name", name], timeout
        )


def reference_keygen(
    keydir: Path,
    *,
    key_type: str = "RSA",
    length: int = 4096,
    subtype: str = "RSA",
    sublength: int = 4096,
    name: str = "client1",
    password: bytes | None = None,
    tls_keytype: str = "ed25519",
    timeout: float = 600,
) -> KeygenResult:
    """Make keys with the real mandos-keygen; with a password, also its clients.conf section.

    key_type/subtype are gpg batch words (RSA, DSA, ELG-E, ...) or "ed25519"/"cv25519".
    """
    keydir.mkdir(parents=True, exist_ok=True)
    _run_keygen(
        ["--dir", keydir, "--no-ssh", "--force", "--name", name, "--tls-keytype", tls_keytype,
         "--type", _PRIMARY_WORDS.get(key_type, key_type), "--length", str(length),
         "--subtype", _SUBKEY_WORDS.get(subtype, subtype), "--sublength", str(sublength)],
        timeout,
    )  # fmt: skip
    section = None if password is None else reference_password(keydir, password, name=name)
    return KeygenResult(keydir, section)


# --------------------------------------------------------------------------- private system bus

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow send_type="method_call"/>
    <allow send_type="method_return"/>
    <allow send_type="signal"/>
    <allow send_type="error"/>
  </policy>
</busconfig>
"""


class PrivateSystemBus:
    """A throwaway system-style dbus-daemon that anyone (even nobody) may use and own names on."""

    def __init__(self, startup_timeout: float = 30.0, *, config: str | None = None) -> None:
        """``config``: a bus configuration with a ``{socket}`` placeholder (default: allow all)."""
        self._config = _BUS_CONFIG if config is None else config
        self.startup_timeout = startup_timeout
        self.address = ""
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment entries that point a program's system bus here."""
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def __enter__(self) -> PrivateSystemBus:
        self.dir = Path(tempfile.mkdtemp(prefix="mandos-test-bus-"))
        self.dir.chmod(0o755)  # the reference server connects after dropping to nobody
        conf = self.dir / "system.conf"
        conf.write_text(self._config.format(socket=self.dir / "system_bus_socket"))
        with (self.dir / "daemon.log").open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    "dbus-daemon",
                    f"--config-file={conf}",
                    "--nofork",
                    "--nopidfile",
                    "--print-address=1",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        try:
            self.address = self._read_address()
        except BaseException:
            self.close()
            raise
        return self

    def _read_address(self) -> str:
        assert self._proc is not None
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], self.startup_timeout)
        line = self._proc.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("unix:"):
            raise ReferenceFailure(f"dbus-daemon printed no address (exit {self._proc.poll()})")
        return line

    def close(self) -> None:
        """Stop the daemon (by PID) and remove its directory."""
        if self._proc is not None:
            end_session(self._proc.pid)
            self._proc.wait(timeout=30)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- server


def is_listening(pid: int, port: int) -> bool:
    """True when the network namespace of `pid` has a TCP socket in LISTEN state on `port`."""
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            return False
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            if state == "0A" and int(local.rpartition(":")[2], 16) == port:
                return True
    return False


@dataclass(frozen=True)
class LogRecord:
    """One console log line of `mandos --debug`."""

    pid: int
    level: str
    message: str


class ReferenceServer:
    """The real `mandos` server, in the foreground on loopback, with no Zeroconf.

    Usage: `with ReferenceServer(conf, bus_env=bus.env) as srv:`
    `    run_reference_client(keydir, srv.connect, timeout=30)`.
    """

    def __init__(
        self,
        clients_conf: str,
        *,
        bus_env: Mapping[str, str],
        address: str = "::1",
        port: int | None = None,
        use_dbus: bool = False,
        debug: bool = True,
        mandos_conf: str = "[DEFAULT]\n",
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        self.clients_conf = clients_conf
        self.bus_env = dict(bus_env)
        self.address = address
        self.port = port or free_port(address)
        self.use_dbus = use_dbus
        self.debug = debug
        self.mandos_conf = mandos_conf
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self.output = ""  # everything it wrote to stdout and stderr, filled in on stop()
        self.returncode: int | None = None
        self._baseline: set[int] = set()
        self._tag = secrets.token_hex(8)
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def connect(self) -> str:
        """The value for `mandos-client --connect` (ADDRESS:PORT, split at the last colon)."""
        return f"{self.address}:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def argv(self) -> list[str]:
        """The command line, as run."""
        assert self.dir is not None
        args = [_PY, "-bI", str(reference_root() / SERVER), "--foreground", "--no-zeroconf",
                "--no-restore", "--address", self.address, "--port", str(self.port),
                "--configdir", str(self.dir / "conf"),
                "--statedir", str(self.dir / "state")]  # fmt: skip
        if "." in self.address:
            args.append("--no-ipv6")  # an IPv4 literal fails on the default AF_INET6 socket
        if not self.use_dbus:
            args.append("--no-dbus")
        if self.debug:
            args.append("--debug")  # the only way to get a console log (else syslog only)
        return [*args, *self.extra_args]

    def __enter__(self) -> ReferenceServer:
        self.start()
        return self

    def start(self) -> None:
        """Write the config, start the server and wait until it listens."""
        self.dir = Path(tempfile.mkdtemp(prefix="mandos-ref-server-"))
        self.dir.chmod(0o711)
        conf, state = self.dir / "conf", self.dir / "state"
        conf.mkdir(mode=0o755)
        state.mkdir(mode=0o755)
        if os.geteuid() == 0:
            os.chown(state, NOBODY, NOBODY)  # it saves clients.pickle after dropping privileges
        for name, text in (("mandos.conf", self.mandos_conf), ("clients.conf", self.clients_conf)):
            path = conf / name
            path.touch(mode=0o600)
            path.write_text(text)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **self.bus_env}
        env[TAG_VAR] = self._tag  # inherited by the gpg-agent it starts to encrypt its state
        with (self.dir / "output.log").open("wb") as log:
            self._proc = subprocess.Popen(
                self.argv(), env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        self._baseline = self._members()  # itself and its multiprocessing helper

    def _members(self) -> set[int]:
        return {p.pid for p in processes() if p.sid == self.pid and p.state != "Z"}

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not is_listening(self.pid, self.port):
            assert self._proc is not None
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise ReferenceFailure(
                    f"reference server not listening on port {self.port} "
                    f"(exit {self._proc.poll()}):\n{self.read_output()[-3000:]}"
                )
            time.sleep(0.05)

    def read_output(self) -> str:
        """What the server has written so far (all of it once stopped)."""
        if self.dir is None:
            return self.output
        return (self.dir / "output.log").read_text(errors="replace")

    def log(self) -> list[LogRecord]:
        """The console log lines so far; the syslog 'Logging error' noise is left out."""
        found = (_LOG_LINE.match(line) for line in self.read_output().splitlines())
        return [LogRecord(int(m[1]), m[2], m[3]) for m in found if m]

    def wait_for_log(self, pattern: str, timeout: float = 30.0) -> LogRecord:
        """The first log record whose message matches the regex `pattern`, waiting for it."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for record in self.log():
                if regex.search(record.message):
                    return record
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no log line matching {pattern!r}:\n{self.read_output()[-3000:]}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM the server (it saves state and exits), then end its whole session by PID."""
        if self._proc is not None:
            # At exit it waits for its per-connection children, which may wait for a peer;
            # what it starts after SIGTERM (gpg, to encrypt the saved state) must be left alone.
            handlers = self._members() - self._baseline
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=1)
            _end_pids(handlers, grace=1.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=15)
            end_session(self._proc.pid)
            self.returncode = self._proc.wait(timeout=30)
            self._proc = None
            reap_tagged_agents(self._tag)
        if self.dir is not None:
            self.output = self.read_output()
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- client


def run_reference_client(
    keydir: Path,
    connect: str,
    *,
    timeout: float,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run the real mandos-client against `connect` (ADDRESS:PORT) until it exits or `timeout`.

    It touches no interface (`--interface=none`) and runs no network hook (an empty hook dir).
    At the deadline it gets SIGTERM (it exits cleanly and re-raises: returncode -15). Any
    gpg-agent it left is ended. stdout is the decrypted secret, exactly as printed.
    """
    root = reference_root()
    tag = secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="mandos-ref-hooks-") as hooks:
        argv: list[str | Path] = [
            client_program(root),
            f"--connect={connect}",
            *client_key_args(keydir),
            f"--network-hook-dir={hooks}",
            "--interface=none",
            *extra_args,
        ]
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "MANDOSPLUGINHELPERDIR": str(helper_dir(root)),
            TAG_VAR: tag,
            **(env or {}),
        }
        try:
            done = run_bounded(argv, env=full_env, timeout=timeout)
        finally:
            reap_tagged_agents(tag)
    return subprocess.CompletedProcess(
        [str(a) for a in argv], done.returncode, done.stdout, done.stderr
    )


# --------------------------------------------------------------------------- cached keys

REFERENCE_PASSWORD = (
    b"interop secret \xc3\xa5\xc3\xa4\xc3\xb6 \x00\x01\xff end"  # binary on purpose
)


def cached_reference_keys(
    label: str,
    *,
    key_type: str = "RSA",
    length: int = 4096,
    subtype: str = "RSA",
    sublength: int = 4096,
    name: str = "client1",
    password: bytes = REFERENCE_PASSWORD,
) -> KeygenResult:
    """Keys and section from the real keygen, made once per cache (RSA-4096: ~7 s) and reused."""
    params = (key_type, length, subtype, sublength, name, password)
    ident = hashlib.sha256(repr(params).encode()).hexdigest()[:12]
    base = cache_dir() / "keys" / f"{label}-{ident}"
    keydir, section = base / "keys", base / "section.conf"
    with file_lock(cache_dir() / "keys" / ".lock"):
        if not section.exists():
            shutil.rmtree(base, ignore_errors=True)
            made = reference_keygen(
                keydir, key_type=key_type, length=length, subtype=subtype,
                sublength=sublength, name=name, password=password,
            )  # fmt: skip
            assert made.section_text is not None
            section.write_text(made.section_text)
    return KeygenResult(keydir, section.read_text())


def with_options(section_text: str, **options: str) -> str:
    """A keygen section with `key = value` lines appended (they end the `secret` continuation)."""
    extra = "".join(f"{key} = {value}\n" for key, value in options.items())
    return section_text.rstrip("\n") + "\n" + extra
