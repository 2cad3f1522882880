"""Network namespaces for tests: two namespaces joined by a veth pair, and processes inside them.

Rules of this module: every namespace it creates is deleted and every process it starts is
killed and reaped by PID when the ``with`` block ends, whatever happened inside.  Names carry
the test process's PID so concurrent test runs never collide.  Addresses are fixed (no DAD,
no autoconfiguration) so tests can assert on them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import pytest

IFNAME = "mnd0"  # the veth end's name inside each namespace
_counter = itertools.count()


@dataclass(frozen=True)
class NsInfo:
    """One namespace of a pair: its name and its end of the veth link."""

    name: str
    ifname: str
    ifindex: int
    ll6: str  # link-local IPv6 address, without scope
    ipv4: str | None


def netns_available() -> bool:
    """True if this process can create network namespaces (root and iproute2 present)."""
    return os.geteuid() == 0 and shutil.which("ip") is not None


requires_netns = pytest.mark.skipif(
    not netns_available(), reason="needs root and iproute2 to create network namespaces"
)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _ns_sh(ns: str, *argv: str) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, *argv], check=True, capture_output=True, text=True, timeout=30
    )
    return done.stdout


def _setup_end(ns: str, ll6: str, ipv4: str | None) -> int:
    """Configure the veth end inside ``ns``; return its interface index."""
    _ip("-n", ns, "link", "set", "lo", "up")
    # Fixed addresses only: no EUI-64 link-local, no DAD (a tentative address cannot be bound).
    _ip("-n", ns, "link", "set", "dev", IFNAME, "addrgenmode", "none")
    _ns_sh(ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{IFNAME}.accept_dad=0")
    _ip("-n", ns, "link", "set", "dev", IFNAME, "multicast", "on", "up")
    _ip("-n", ns, "-6", "addr", "add", f"{ll6}/64", "dev", IFNAME, "nodad")
    if ipv4 is not None:
        _ip("-n", ns, "-4", "addr", "add", f"{ipv4}/24", "dev", IFNAME)
        _ip("-n", ns, "-4", "route", "add", "224.0.0.0/4", "dev", IFNAME)
    index = _ns_sh(ns, "cat", f"/sys/class/net/{IFNAME}/ifindex").strip()
    return int(index)


def _delete_namespace(ns: str) -> None:
    """SIGKILL anything still running inside ``ns`` (our own children are reaped elsewhere),
    then delete it."""
    done = subprocess.run(
        ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30, check=False
    )
    for word in done.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(word), signal.SIGKILL)
    subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30, check=False)


@contextlib.contextmanager
def veth_pair_namespaces(
    prefix: str = "mt", *, ipv4: bool = True
) -> Iterator[tuple[NsInfo, NsInfo]]:
    """Two fresh namespaces ``a`` and ``b`` joined by a veth link, both ends up.

    ``a`` has fe80::a and 10.231.0.1, ``b`` has fe80::b and 10.231.0.2 (IPv4 only if asked).
    """
    base = f"{prefix}-{os.getpid()}-{next(_counter)}"
    names = (f"{base}-a", f"{base}-b")
    created: list[str] = []
    try:
        for ns in names:
            _ip("netns", "add", ns)
            created.append(ns)
        # Create both ends directly inside their namespaces: the root namespace is never touched.
        _ip(
            "link",
            "add",
            IFNAME,
            "netns",
            names[0],
            "type",
            "veth",
            "peer",
            "name",
            IFNAME,
            "netns",
            names[1],
        )
        ends = (("fe80::a", "10.231.0.1"), ("fe80::b", "10.231.0.2"))
        infos = tuple(
            NsInfo(ns, IFNAME, _setup_end(ns, ll6, v4 if ipv4 else None), ll6, v4 if ipv4 else None)
            for ns, (ll6, v4) in zip(names, ends, strict=True)
        )
        yield infos[0], infos[1]
    finally:
        for ns in reversed(created):
            _delete_namespace(ns)


def run_in_ns(ns: NsInfo | str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
    """Start ``argv`` inside namespace ``ns`` (text pipes for stdin and stdout by default)."""
    name = ns.name if isinstance(ns, NsInfo) else ns
    kwargs.setdefault("stdin", subprocess.PIPE)
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.Popen(["ip", "netns", "exec", name, *argv], text=True, **kwargs)


def stop(proc: subprocess.Popen[str], timeout: float = 10.0) -> int:
    """End ``proc``: close stdin, then SIGTERM, then SIGKILL; always reap it and close its pipes."""
    try:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        proc.terminate()
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    finally:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@dataclass
class JsonLines:
    """Reads a process's stdout as JSON lines on a thread, so a test can wait with a timeout."""

    stream: IO[str] | None  # a Popen's stdout, which must be a pipe
    _lines: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        assert self.stream is not None, "the process's stdout is not a pipe"
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.stream is not None
        # stop() closes the stream once the process is dead, perhaps while we are still here.
        with contextlib.suppress(ValueError, OSError):
            for line in self.stream:
                with contextlib.suppress(ValueError):
                    self._lines.put(json.loads(line))
        self._lines.put(None)  # end of stream

    def next(self, timeout: float) -> dict[str, Any] | None:
        """The next object, or None at end of stream; raises TimeoutError after ``timeout``."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no line within {timeout} s") from None


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """A list to append started processes to; each is stopped and reaped on exit."""
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            stop(proc, timeout=5.0)


@contextlib.contextmanager
def loopback_namespace(prefix: str = "mlo") -> Iterator[str]:
    """A fresh namespace with only ``lo``, up: for a program that can listen on all interfaces
    only (gnutls-serv), where that means this namespace's loopback and nothing else."""
    ns = f"{prefix}-{os.getpid()}-{next(_counter)}"
    _ip("netns", "add", ns)
    try:
        _ip("-n", ns, "link", "set", "lo", "up")
        yield ns
    finally:
        _delete_namespace(ns)


# Run inside the namespace: connect to 127.0.0.1:PORT there and send the socket back (SCM_RIGHTS).
_CONNECT_AND_SEND = """
import socket, sys, time
port, back = int(sys.argv[1]), socket.socket(fileno=int(sys.argv[2]))
deadline = time.monotonic() + float(sys.argv[3])
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        break
    except ConnectionRefusedError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.05)
socket.send_fds(back, [b"s"], [s.fileno()])
"""


def connect_in_namespace(ns: str, port: int, wait: float = 30.0) -> socket.socket | None:
    """A TCP connection to 127.0.0.1:``port`` of namespace ``ns``, made by a short-lived process
    in it and handed over; None if nothing listened there within ``wait`` seconds."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        done = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-I", "-c", _CONNECT_AND_SEND,
             str(port), str(theirs.fileno()), str(wait)],
            pass_fds=(theirs.fileno(),), capture_output=True, timeout=wait + 30, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            return None
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    return socket.socket(fileno=fds[0])
