"""Tang beside Mandos: N clients at once recovering a key from Debian's tang 11, and ours.

Usage (as root, from the repository; needs ``apt-get install tang clevis``):
``.venv/bin/python -m bench.tang`` [``--sizes 200,1000``] [``--no-ours``].

Tang runs as Debian ships it, socket-activated with one process per connection
(``tangd.socket`` has ``Accept=true``): here ``systemd-socket-activate --accept --inetd`` on
127.0.0.1 runs ``/usr/libexec/tangd DB`` for each connection, with keys from
``tangd-keygen``. First one real ``clevis encrypt tang`` / ``clevis decrypt`` round trip checks
the set-up; then N clients at once each send what ``clevis decrypt`` sends to recover its key
(``POST /rec/KID``, an ephemeral P-521 ECMR key; ``bench.tang_clients``). Our server gets the
same N with one Ed25519 key per client (``bench.server_storm``). Figures: secrets (recovered
keys) per second, p50, p99, and peak RSS of the server's process tree. Asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.interop.reference import is_listening
from tests.ports import free_port

from bench.server_storm import Server, clients_conf, our_server, run_load, storm
from mandos.adapters.gnutls.keys import generate_ed25519_keypair, public_key_id

TANGD = Path("/usr/libexec/tangd")
HOST = "127.0.0.1"
RUN_TIMEOUT = 600.0


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def exchange_kid(db: Path) -> str:
    """The SHA-256 thumbprint (RFC 7638) of the exchange (``deriveKey``) key in ``db``."""
    for path in sorted(db.glob("*.jwk")):
        jwk = json.loads(path.read_text())
        if "deriveKey" in jwk.get("key_ops", ()):
            members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
            canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
            return _b64url(hashlib.sha256(canonical).digest())
    raise RuntimeError(f"no exchange key in {db}")


def ecmr_body() -> bytes:
    """An ephemeral P-521 ECMR public key as JWK, as ``clevis decrypt`` posts it."""
    key = subprocess.run(
        ["jose", "jwk", "gen", "-i", '{"alg":"ECMR","crv":"P-521"}'],
        capture_output=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    pub = subprocess.run(
        ["jose", "jwk", "pub", "-i-"], input=key, capture_output=True, check=True, timeout=30
    ).stdout
    return pub.strip()


@contextlib.contextmanager
def tang_server(db: Path) -> Iterator[Server]:
    """tangd per connection under systemd-socket-activate on 127.0.0.1."""
    port = free_port(HOST)
    argv = ["systemd-socket-activate", "--accept", "--inetd", "-l", f"{HOST}:{port}",
            str(TANGD), str(db)]  # fmt: skip
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not is_listening(proc.pid, port):
            if proc.poll() is not None:
                raise RuntimeError("systemd-socket-activate exited")
            time.sleep(0.005)
        yield Server("tang", proc.pid, port, time.perf_counter() - began)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def clevis_round_trip(port: int) -> float:
    """One real ``clevis encrypt tang`` and ``clevis decrypt``; the decrypt's seconds."""
    config = json.dumps({"url": f"http://{HOST}:{port}"})
    jwe = subprocess.run(
        ["clevis", "encrypt", "tang", config, "-y"], input=b"the secret",
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    began = time.perf_counter()
    out = subprocess.run(
        ["clevis", "decrypt"], input=jwe, capture_output=True, check=True, timeout=60
    ).stdout
    if out != b"the secret":
        raise RuntimeError("clevis decrypt gave something else")
    return time.perf_counter() - began


def tang_storm(server: Server, kid: str, bodyfile: Path, n: int) -> dict[str, float]:
    """N recoveries at once against Tang; the same figures as ``server_storm.storm``."""
    argv = [sys.executable, "-m", "bench.tang_clients", HOST, str(server.port), kid,
            str(bodyfile), str(n)]  # fmt: skip
    return run_load(server, argv)


def _row(n: int, label: str, f: dict[str, float]) -> str:
    return (f"{n:>5} {label:>6} {f['ok']:>5.0f} {f['per_second']:>10.1f} {f['p50'] * 1000:>8.1f}"
            f" {f['p99'] * 1000:>8.1f} {f['peak_rss_mib']:>13.1f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000")
    parser.add_argument("--no-ours", action="store_true")
    args = parser.parse_args()
    if not TANGD.exists():
        print("bench.tang: needs Debian's tang and clevis (apt-get install tang clevis)")
        return 1
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"Tang vs Mandos on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-tang-") as tmp:
        work = Path(tmp)
        db = work / "db"
        db.mkdir()
        subprocess.run([str(TANGD) + "-keygen", str(db)], check=True, timeout=60)
        kid = exchange_kid(db)
        bodyfile = work / "body.jwk"
        bodyfile.write_bytes(ecmr_body())
        keys = [] if args.no_ours else [generate_ed25519_keypair() for _ in range(max(sizes))]
        keyfile = work / "keys.json"
        keyfile.write_text(json.dumps([[k.decode(), p.decode()] for k, p in keys]))
        with tang_server(db) as tang:
            print(f"clevis decrypt (one, real): {clevis_round_trip(tang.port) * 1000:.0f} ms")
        print(f"{'N':>5} {'server':>6} {'ok':>5} {'secrets/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
              f" {'peak RSS MiB':>13}")  # fmt: skip
        for n in sizes:
            with tang_server(db) as tang:
                print(_row(n, "tang", tang_storm(tang, kid, bodyfile, n)), flush=True)
            if keys:
                conf = clients_conf([str(public_key_id(pub)) for _, pub in keys[:n]])
                with our_server(conf) as ours:
                    print(_row(n, "ours", storm(ours, keyfile, n)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
