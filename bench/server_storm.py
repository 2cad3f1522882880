"""Server storm: N clients at once against our server and Debian's reference, side by side.

Usage (as root, from the repository): ``.venv/bin/python -m bench.server_storm``
[``--sizes 50,200,1000``] [``--configured 1,1000,10000``] [``--no-reference``]
[``--workers 0,1,2``] (our server's ``--handshake-workers``; 0 is the event loop)
[``--client-procs P``] (load-generator processes; each client retries every 10 s after a
failed attempt, as ``mandos-client`` does: the ``retried`` column counts failed attempts).

For each N: secrets per second, p50/p99 latency and peak RSS of the server's process tree
(the reference forks one process per connection), for ours with the audit trail off and on
(``ours+audit``: every secret's record fsynced before it leaves, group-committed), and the
audit-on/off and our/reference ratios. Then each
server's startup time (spawn to listening) and RSS with 1, 1,000 and 10,000 clients configured.
Prints figures only; asserts nothing. Every client has its own Ed25519 key.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.interop.reference import PrivateSystemBus, ReferenceServer, is_listening
from tests.ports import free_port

from bench._procs import PeakRss, rss_kib, tree_pids
from mandos.adapters.gnutls.keys import generate_ed25519_keypair, public_key_id

HOST = "::1"
RUN_TIMEOUT = 600.0


def _section(i: int, key_id: str) -> str:
    secret = base64.b64encode(secrets.token_bytes(1024)).decode()
    return (
        f"[client{i}]\nkey_id = {key_id}\nfingerprint = {secrets.token_hex(20).upper()}\n"
        f"host = ::1\nchecker = true\ninterval = PT1H\nsecret = {secret}\n"
    )


def clients_conf(key_ids: list[str]) -> str:
    """A clients.conf with one section per key ID (fingerprints added: the reference needs one)."""
    return "\n".join(_section(i, k) for i, k in enumerate(key_ids))


@dataclass
class Server:
    """A started server under test."""

    label: str
    pid: int
    port: int
    startup_seconds: float
    startup_cpu_seconds: float = float("nan")


@contextlib.contextmanager
def our_server(conf: str, workers: int = 0, *, audit: bool = False) -> Iterator[Server]:
    """Our server, foreground, warnings only, on ::1; handshakes in ``workers`` threads
    (``audit``: with the audit trail on)."""
    with tempfile.TemporaryDirectory(prefix="bench-ours-") as tmp:
        base = Path(tmp)
        (base / "conf").mkdir()
        (base / "conf" / "clients.conf").write_text(conf)
        port = free_port(HOST)
        argv = [
            sys.executable, "-m", "mandos.server", "--foreground", "--no-zeroconf", "--no-dbus",
            "--no-restore", f"--address={HOST}", f"--port={port}",
            f"--configdir={base / 'conf'}", f"--statedir={base / 'state'}",
            f"--handshake-workers={workers}",
            *([f"--audit-log={base / 'audit.jsonl'}"] if audit else []),
        ]  # fmt: skip
        began = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        try:
            while not is_listening(proc.pid, port):
                if proc.poll() is not None:
                    raise RuntimeError("our server exited")
                time.sleep(0.005)
            label = "ours+audit" if audit else (f"ours/{workers}w" if workers else "ours")
            yield Server(label, proc.pid, port, time.perf_counter() - began, cpu_seconds(proc.pid))
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def reference_server(conf: str, bus_env: dict[str, str]) -> Iterator[Server]:
    """Debian's mandos 1.8.16, foreground, no debug output, on ::1."""
    server = ReferenceServer(conf, bus_env=bus_env, address=HOST, debug=False, startup_timeout=600)
    began = time.perf_counter()
    server.start()
    try:
        yield Server("reference", server.pid, server.port, time.perf_counter() - began)
    finally:
        server.stop()


def storm(server: Server, keyfile: Path, n: int, procs: int | None = None) -> dict[str, float]:
    """Run N clients at once (in ``procs`` load-generator processes); figures for this server."""
    argv = [sys.executable, "-m", "bench.storm_clients", HOST, str(server.port), str(keyfile)]
    argv += [str(n), *([f"--procs={procs}"] if procs else [])]
    return run_load(server, argv)


def run_load(server: Server, argv: list[str]) -> dict[str, float]:
    """Run a load generator that prints ``{latencies, failed, wall}``; the figures of one row."""
    with PeakRss(server.pid) as peak:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=True)
    result = json.loads(done.stdout)
    latencies = sorted(result["latencies"]) or [float("nan")]
    ok = len(result["latencies"])
    return {
        "ok": ok,
        "failed": result["failed"],
        "retried": result.get("attempts_failed", 0),
        "per_second": ok / result["wall"],
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "peak_rss_mib": peak.peak_kib / 1024,
    }


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "-"


def cpu_seconds(pid: int) -> float:
    """User+system CPU time ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_storms(
    sizes: list[int],
    bus_env: dict[str, str] | None,
    workdir: Path,
    workers: list[int],
    procs: int | None = None,
) -> None:
    """Print the storm table."""
    if not sizes:
        return
    keys = [generate_ed25519_keypair() for _ in range(max(sizes))]
    keyfile = workdir / "keys.json"
    keyfile.write_text(json.dumps([[k.decode(), p.decode()] for k, p in keys]))
    print(f"{'N':>5} {'server':>10} {'ok':>5} {'secrets/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
          f" {'peak RSS MiB':>13} {'retried':>8}")  # fmt: skip
    for n in sizes:
        conf = clients_conf([str(public_key_id(pub)) for _, pub in keys[:n]])
        figures: dict[str, dict[str, float]] = {}
        servers = [(f"ours/{w}w" if w else "ours", our_server(conf, w)) for w in workers]
        servers.append(("ours+audit", our_server(conf, audit=True)))
        if bus_env is not None:
            servers.append(("reference", reference_server(conf, bus_env)))
        for label, manager in servers:
            try:
                with manager as server:
                    figures[label] = storm(server, keyfile, n, procs)
            except (subprocess.TimeoutExpired, subprocess.CalledProcessError, RuntimeError) as exc:
                print(f"{n:>5} {label:>10} failed: {exc.__class__.__name__}")
                continue
            f = figures[label]
            p50, p99 = f["p50"] * 1000, f["p99"] * 1000
            print(f"{n:>5} {label:>10} {f['ok']:>5.0f} {f['per_second']:>10.1f}"
                  f" {p50:>8.1f} {p99:>8.1f} {f['peak_rss_mib']:>13.1f}"
                  f" {f['retried']:>8.0f}")  # fmt: skip
        if "ours" in figures and "ours+audit" in figures:
            o, a = figures["ours"], figures["ours+audit"]
            print(f"{n:>5} {'audit/off':>10} {'':>5} {_ratio(a['per_second'], o['per_second']):>10}"
                  f" {_ratio(a['p50'], o['p50']):>8} {_ratio(a['p99'], o['p99']):>8}"
                  f" {_ratio(a['peak_rss_mib'], o['peak_rss_mib']):>13}")  # fmt: skip
        if "ours" in figures and "reference" in figures:
            o, r = figures["ours"], figures["reference"]
            print(f"{n:>5} {'ratio':>10} {'':>5} {_ratio(o['per_second'], r['per_second']):>10}"
                  f" {_ratio(o['p50'], r['p50']):>8} {_ratio(o['p99'], r['p99']):>8}"
                  f" {_ratio(o['peak_rss_mib'], r['peak_rss_mib']):>13}")  # fmt: skip


def run_startups(counts: list[int], bus_env: dict[str, str] | None) -> None:
    """Print startup time and RSS with many clients configured."""
    print(f"\n{'clients':>8} {'server':>10} {'startup s':>10} {'CPU s':>6} {'RSS MiB':>8}")
    for count in counts:
        conf = clients_conf([secrets.token_hex(32).upper() for _ in range(count)])
        servers = [our_server(conf)]
        if bus_env is not None:
            servers.append(reference_server(conf, bus_env))
        for manager in servers:
            with manager as server:
                time.sleep(1.0)  # settle: the reference finishes setting up after it listens
                rss = sum(rss_kib(p) for p in tree_pids(server.pid)) / 1024
                print(f"{count:>8} {server.label:>10} {server.startup_seconds:>10.2f}"
                      f" {server.startup_cpu_seconds:>6.2f} {rss:>8.1f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200,1000")
    parser.add_argument("--configured", default="1,1000,10000")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--workers", default="0")
    parser.add_argument("--client-procs", type=int, help="load generators (default: 1 a core)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    counts = [int(s) for s in args.configured.split(",") if s]
    print(f"server storm on {os.cpu_count()} cores, loopback {HOST}")
    with tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp, contextlib.ExitStack() as stack:
        bus_env = None
        if not args.no_reference:
            bus_env = stack.enter_context(PrivateSystemBus()).env
        workers = [int(w) for w in args.workers.split(",")]
        run_storms(sizes, bus_env, Path(tmp), workers, args.client_procs)
        run_startups(counts, bus_env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
