"""Client latency: process start to password on stdout, our mandos-client against Debian's.

Usage (as root, from the repository): ``.venv/bin/python -m bench.client_latency``
[``--runs 20``] [``--no-discovery``] [``--threshold-only``].

Threshold and racing (ours only, issue 13), three rows on loopback: one server (plain secret,
one --connect); K = 2 of 3 shares, all three servers up (three --connect); and the same with a
silent server (accepts, never answers) listed first in place of the third. Targets: 2 of 3 at
most 1.2x one server; the silent server costs at most --deadline (it never takes a turn).

Both clients use the same keys (from our mandos-keygen, Ed25519 + Cv25519) against the same
running server (ours). Two variants: ``--connect`` to our server on 127.0.0.1, and Zeroconf
discovery, with our server announcing on a veth end in namespace A and each client browsing in
namespace B (IPv6 link-local only). For each: the median and spread of N runs, our/reference
ratio, and the peak RSS of each client's process tree (VmHWM sampled every 2 ms, summed over
the PIDs, so GPGME's gpg counts). Prints figures only; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import secrets
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.interop.reference import (
    TAG_VAR,
    client_program,
    helper_dir,
    reap_tagged_agents,
    reference_root,
)
from tests.keyfiles import client_key_args
from tests.netns import NsInfo, netns_available, veth_pair_namespaces
from tests.server.ourserver import our_server

from mandos.keygen import main as keygen

OUR_CLIENT = str(Path(sys.executable).parent / "mandos-client")
RUN_TIMEOUT = 60.0
RSS_RUNS = 3  # extra runs, after the timed ones, that sample memory
DISCOVERY_GAP = 1.2  # s between discovery runs: mDNS responders rate-limit answers (RFC 6762 6)


@dataclass
class Sample:
    """One client run: seconds from spawn to the whole password read, and max RSS in KiB."""

    seconds: float
    maxrss_kib: int
    ok: bool
    stderr_tail: str = ""


@dataclass
class Keys:
    """Our keygen's key files and the section for ``password``."""

    keydir: Path
    section: str
    password: bytes

    def args(self) -> list[str]:
        return client_key_args(self.keydir)


def make_keys(base: Path) -> Keys:
    """Ed25519/Cv25519 keys and a section with a random password, from our keygen in-process."""
    keydir = base / "keys"
    keydir.mkdir(mode=0o700)
    ed = ["--type", "ed25519", "--subtype", "cv25519", "--name", "client1"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert keygen.main(["--dir", str(keydir), *ed]) == 0
    password = secrets.token_urlsafe(32).encode()
    passfile = base / "password"
    passfile.write_bytes(password)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert (
            keygen.main(["--dir", str(keydir), "--name", "client1", "-S", "-F", str(passfile)]) == 0
        )
    section = out.getvalue().rstrip("\n") + "\nchecker = true\n"
    return Keys(keydir, section, password)


class HighWater:
    """Samples VmHWM (peak RSS since exec) of a process tree; ``kib`` sums each PID's last value.

    wait4's ru_maxrss cannot be used: it keeps the high-water mark of the memory the child
    shared with this (large) Python process between fork and exec.
    """

    def __init__(self, root: int, interval: float = 0.002) -> None:
        self._root, self._interval = root, interval
        self._stop = threading.Event()
        self._seen: dict[int, int] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        pids, todo = [], [self._root]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            with contextlib.suppress(OSError, ValueError):
                todo += [
                    int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                ]
        return pids

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self._tree():
                with contextlib.suppress(OSError, ValueError):
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self._seen[pid] = int(line.split()[1])
            self._stop.wait(self._interval)

    def stop(self) -> int:
        """Stop sampling; the summed peaks in KiB."""
        self._stop.set()
        self._thread.join()
        return sum(self._seen.values())


def timed_run(
    argv: Sequence[str], env: dict[str, str], expected: bytes, *, rss: bool = False
) -> Sample:
    """Spawn ``argv``; time until ``expected`` has been read from its stdout; then reap it.

    With ``rss`` its peak RSS is sampled too (the sampling costs CPU: not for timed runs).
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, close_fds=True
    )
    peak = HighWater(proc.pid) if rss else None
    assert proc.stdout is not None
    assert proc.stderr is not None
    fd, got = proc.stdout.fileno(), b""
    deadline = started + RUN_TIMEOUT
    while len(got) < len(expected):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.perf_counter()))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            break
        got += chunk
    elapsed = time.perf_counter() - started
    if proc.poll() is None and got != expected:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    kib = peak.stop() if peak else 0
    err = proc.stderr.read().decode(errors="replace")
    proc.stdout.close()
    proc.stderr.close()
    ok = got == expected and proc.returncode == 0
    return Sample(elapsed, kib, ok, "" if ok else err[-400:])


def client_argv(
    which: str, keys: Keys, hooks: Path, *, connect: str | None, iface: str
) -> list[str]:
    """The argv of our client or the reference's, for --connect or discovery on ``iface``."""
    program = OUR_CLIENT if which == "ours" else str(client_program(reference_root()))
    where = [f"--connect={connect}", "--interface=none"] if connect else [f"--interface={iface}"]
    return [program, *keys.args(), *where, f"--network-hook-dir={hooks}", "--retry=1"]


def client_env(which: str, tag: str) -> dict[str, str]:
    """A minimal environment; the reference also needs its plugin-helper directory."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", TAG_VAR: tag}
    if which == "reference":
        env["MANDOSPLUGINHELPERDIR"] = str(helper_dir(reference_root()))
    return env


CLIENTS = ("ours", "reference")


def series(
    keys: Keys, hooks: Path, runs: int, *, connect: str | None, ns: NsInfo | None
) -> dict[str, list[Sample]]:
    """``runs`` timed runs of each client, alternating so both see the same machine load.

    One untimed warm-up round first; then RSS_RUNS rounds that only sample memory (their peak
    is stored on the first samples).
    """
    tag = secrets.token_hex(8)
    argvs = {}
    for which in CLIENTS:
        argv = client_argv(which, keys, hooks, connect=connect, iface=ns.ifname if ns else "")
        # ip netns exec execs the client: the PID we watch is the client's own.
        argvs[which] = ["ip", "netns", "exec", ns.name, *argv] if ns is not None else argv
    samples: dict[str, list[Sample]] = {which: [] for which in CLIENTS}
    try:
        for i in range(1 + runs + RSS_RUNS):
            for which in CLIENTS:
                rss = i > runs
                got = timed_run(argvs[which], client_env(which, tag), keys.password, rss=rss)
                reap_tagged_agents(tag)  # the reference's GPGME leaves a gpg-agent behind
                if rss:
                    samples[which][i - runs - 1].maxrss_kib = got.maxrss_kib
                elif i:
                    samples[which].append(got)
                if ns is not None:
                    time.sleep(DISCOVERY_GAP)
    finally:
        reap_tagged_agents(tag)
    return samples


@contextlib.contextmanager
def ns_server(ns: NsInfo, keys: Keys, base: Path) -> Iterator[None]:
    """Our server in ``ns`` with Zeroconf on its veth end (any port), until the block ends."""
    state = base / "state"
    state.mkdir(parents=True)
    (base / "clients.conf").write_text(keys.section)
    (base / "mandos.conf").write_text("[DEFAULT]\n")
    log = base / "server.log"
    argv = ["ip", "netns", "exec", ns.name, sys.executable, "-m", "mandos.server",
            "--foreground", "--debug", "--no-dbus", f"--interface={ns.ifname}",
            f"--configdir={base}", f"--statedir={state}"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while "Listening on port" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        time.sleep(2)  # let the Zeroconf announcement finish probing
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Row:
    """Figures for one client in one variant."""

    variant: str
    client: str
    samples: list[Sample]

    def line(self, ours_median: float | None) -> str:
        good = [s for s in self.samples if s.ok]
        if not good:
            tail = self.samples[-1].stderr_tail.strip().splitlines()[-1:] if self.samples else []
            return f"{self.variant:<10} {self.client:<10} FAILED ({'; '.join(tail)})"
        times = sorted(s.seconds * 1000 for s in good)
        median = statistics.median(times)
        ratio = f"{ours_median / median:5.2f}" if ours_median else "    -"
        rss = max(s.maxrss_kib for s in self.samples) / 1024
        rss_text = f"{rss:8.1f}" if rss else f"{'-':>8}"  # not sampled
        return (
            f"{self.variant:<10} {self.client:<10} {median:8.1f} {times[0]:8.1f} "
            f"{times[-1]:8.1f} {len(good):>3}/{len(self.samples):<3} {rss_text}  {ratio}"
        )

    def median(self) -> float | None:
        good = [s.seconds * 1000 for s in self.samples if s.ok]
        return statistics.median(good) if good else None


def print_table(rows: list[Row]) -> None:
    """Median/min/max in ms, successes, max RSS in MiB, and ours/reference on the reference row."""
    print(f"{'variant':<10} {'client':<10} {'median':>8} {'min':>8} {'max':>8} {'ok':>7} "
          f"{'RSS MiB':>8}  ours/ref")  # fmt: skip
    for row in rows:
        ours = next(
            (r.median() for r in rows if r.variant == row.variant and r.client == "ours"), None
        )
        print(row.line(ours if row.client == "reference" else None))


def share_sections(keys: Keys, out: Path) -> list[str]:
    """Three share sections of ``keys.password``, threshold 2, from our keygen in-process."""
    passfile = out.with_suffix(".pw")
    passfile.write_bytes(keys.password)
    argv = ["--dir", str(keys.keydir), "--name", "client1", "-S", "-F", str(passfile),
            "--threshold", "2", "--shares", "3", "--output-dir", str(out)]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        assert keygen.main(argv) == 0
    return [
        (out / f"client1.share-{i}.conf").read_text().rstrip("\n") + "\nchecker = true\n"
        for i in (1, 2, 3)
    ]


def threshold_rows(keys: Keys, base: Path, hooks: Path, runs: int) -> list[Row]:
    """Our client: one server; 2 of 3 all up; 2 of 3 with a silent server first."""
    sections = share_sections(keys, base / "shares")
    env = client_env("ours", secrets.token_hex(8))

    def timed(connects: list[str]) -> list[Sample]:
        argv = [OUR_CLIENT, *keys.args(), *(f"--connect={c}" for c in connects),
                "--interface=none", f"--network-hook-dir={hooks}", "--retry=1"]  # fmt: skip
        timed_run(argv, env, keys.password)  # warm-up
        return [timed_run(argv, env, keys.password) for _ in range(runs)]

    rows = []
    with our_server(keys.section) as one:
        rows.append(Row("1 server", "ours", timed([one.connect])))
    with contextlib.ExitStack() as stack:
        up = [stack.enter_context(our_server(s)).connect for s in sections]
        rows.append(Row("2 of 3", "ours", timed(up)))
        # Accepts (the kernel's backlog does) and never answers: the TLS handshake hangs.
        silent = stack.enter_context(socket.create_server(("127.0.0.1", 0), backlog=1024))
        silent_at = f"127.0.0.1:{silent.getsockname()[1]}"
        rows.append(Row("2of3+mute", "ours", timed([silent_at, *up[:2]])))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run both variants for both clients and print the table."""
    parser = argparse.ArgumentParser(prog="bench.client_latency")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-discovery", action="store_true")
    parser.add_argument("--threshold-only", action="store_true")
    opts = parser.parse_args(argv)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="mandos-bench-") as tmp:
        base = Path(tmp)
        keys = make_keys(base)
        hooks = base / "hooks"
        hooks.mkdir()
        rows += threshold_rows(keys, base, hooks, opts.runs)
        if opts.threshold_only:
            print_table(rows)
            return 0
        reference_root()  # fetch and check it before timing anything
        with our_server(keys.section) as server:
            found = series(keys, hooks, opts.runs, connect=server.connect, ns=None)
            rows += [Row("--connect", which, found[which]) for which in CLIENTS]
        if opts.no_discovery:
            pass
        elif not netns_available():
            print("discovery: skipped (needs root and iproute2 for network namespaces)")
        else:
            with (
                veth_pair_namespaces("mbc", ipv4=False) as (a, b),
                ns_server(a, keys, base / "ns-server"),
            ):
                found = series(keys, hooks, opts.runs, connect=None, ns=b)
                rows += [Row("zeroconf", which, found[which]) for which in CLIENTS]
    print_table(rows)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{opts.runs} runs each, interleaved; load average after: {load}; {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
