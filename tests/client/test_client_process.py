"""mandos-client as a real process against a real GnuTLS Mandos-server peer on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.conftest import KeySet
from tests.client.peer import CLIENT, ClientRun, MandosPeer, PgpKey, Reply, start_client

PREFIX = "Mandos plugin mandos-client: "


def _no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    for line in stderr.splitlines():
        assert line.startswith((PREFIX, "mandos-client: ", "Try `")), line


async def _fetch(keyset: KeySet, peer: MandosPeer, *extra: str) -> tuple[int, bytes, str]:
    client = await start_client(
        [f"--connect={peer.connect}", "--retry=0.2", *keyset.args(), *extra]
    )
    try:
        return await client.finish()
    finally:
        await client.stop()


async def test_password_printed_without_newline(keyset: KeySet) -> None:
    secret = keyset.pgp.encrypt(b"correct horse battery staple")
    async with MandosPeer([Reply("secret", secret)]) as peer:
        rc, out, err = await _fetch(keyset, peer)
    assert (rc, out) == (0, b"correct horse battery staple"), err
    assert peer.version_lines == [b"1\r\n"]
    assert peer.key_ids == [keyset.key_id]
    _no_traceback(err)


async def test_ipv6_loopback(keyset: KeySet) -> None:
    secret = keyset.pgp.encrypt(b"six")
    async with MandosPeer([Reply("secret", secret)], host="::1") as peer:
        rc, out, err = await _fetch(keyset, peer)
    assert (rc, out) == (0, b"six"), err


async def test_binary_password_with_trailing_newline_kept(keyset: KeySet) -> None:
    password = bytes(range(256)) + b"\n"
    async with MandosPeer([Reply("secret", keyset.pgp.encrypt(password))]) as peer:
        rc, out, _ = await _fetch(keyset, peer)
    assert (rc, out) == (0, password)


@pytest.mark.parametrize("which", ["multi", "future"])
async def test_hard_keys_decrypt(keyset: KeySet, pgp_keys: dict[str, PgpKey], which: str) -> None:
    """Several encryption subkeys (message to the last one), and a key from the future."""
    key = pgp_keys[which]
    recipient = key.subkeys()[-1] + "!" if which == "multi" else None
    secret = key.encrypt(b"hard key", recipient=recipient)
    async with MandosPeer([Reply("secret", secret)]) as peer:
        rc, out, err = await _fetch(
            keyset, peer, f"--pubkey={key.pubkey}", f"--seckey={key.seckey}"
        )
    assert (rc, out) == (0, b"hard key"), err


async def test_refused_then_retried(keyset: KeySet) -> None:
    """Zero bytes means refused; the same server is asked again after --retry."""
    secret = keyset.pgp.encrypt(b"second time")
    async with MandosPeer([Reply("secret", b""), Reply("close"), Reply("secret", secret)]) as peer:
        rc, out, err = await _fetch(keyset, peer)
    assert (rc, out) == (0, b"second time"), err
    assert len(peer.version_lines) == 3
    assert "refused" in err
    _no_traceback(err)


@pytest.mark.parametrize(
    ("reply", "needle"),
    [
        (Reply("raw", b"\x16\x03\x01 this is not TLS at all" * 10), "TLS handshake"),
        (Reply("secret", b"\x85garbage that is not OpenPGP" * 3), "cannot decrypt"),
        (Reply("close"), "TLS handshake"),
    ],
    ids=["not-tls", "not-openpgp", "closed"],
)
async def test_bad_server_one_line_each_and_keeps_trying(
    keyset: KeySet, reply: Reply, needle: str
) -> None:
    async with MandosPeer([reply]) as peer:
        client = await start_client([f"--connect={peer.connect}", "--retry=0.2", *keyset.args()])
        try:
            await client.wait_for_lines(needle, count=3)
            rc, out, err = await client.terminate()
        finally:
            await client.stop()
    assert rc == -signal.SIGTERM
    assert out == b""
    assert len(peer.version_lines) >= 3
    _no_traceback(err)


async def test_secret_for_another_key(keyset: KeySet, pgp_keys: dict[str, PgpKey]) -> None:
    secret = pgp_keys["other"].encrypt(b"not for you")
    async with MandosPeer([Reply("secret", secret)]) as peer:
        client = await start_client([f"--connect={peer.connect}", "--retry=0.2", *keyset.args()])
        try:
            await client.wait_for_lines("cannot decrypt", count=2)
            rc, out, err = await client.terminate()
        finally:
            await client.stop()
    assert (rc, out) == (-signal.SIGTERM, b"")
    _no_traceback(err)


async def test_passphrase_protected_key(keyset: KeySet, pgp_keys: dict[str, PgpKey]) -> None:
    key = pgp_keys["protected"]
    async with MandosPeer([Reply("secret", key.encrypt(b"locked"))]) as peer:
        args = [f"--connect={peer.connect}", "--retry=0.2", *keyset.args(pgp=key)]
        client = await start_client(args)
        try:
            await client.wait_for_lines("cannot decrypt", count=2)
            rc, _, err = await client.terminate()
        finally:
            await client.stop()
    assert rc == -signal.SIGTERM
    _no_traceback(err)


async def test_connection_refused_retried_then_sigterm(keyset: KeySet) -> None:
    async with MandosPeer([Reply("close")]) as peer:
        port = peer.port  # closed again when the peer stops: nothing listens there
    client = await start_client([f"--connect=127.0.0.1:{port}", "--retry=0.2", *keyset.args()])
    try:
        await client.wait_for_lines("Connection refused", count=3)
        rc, out, err = await client.terminate()
    finally:
        await client.stop()
    assert (rc, out) == (-signal.SIGTERM, b"")
    _no_traceback(err)


@pytest.mark.slow
async def test_silent_server_times_out_and_is_retried(keyset: KeySet) -> None:
    """A server that accepts and never answers costs one handshake time limit (10 s) per try."""
    async with MandosPeer([Reply("silent")]) as peer:
        client = await start_client([f"--connect={peer.connect}", "--retry=0.1", *keyset.args()])
        try:
            await client.wait_for_lines("no answer within", count=2, limit=90)
            rc, _, err = await client.terminate()
        finally:
            await client.stop()
    assert rc == -signal.SIGTERM
    assert len(peer.version_lines) >= 2
    _no_traceback(err)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
async def test_stop_signals_while_waiting(keyset: KeySet, sig: signal.Signals) -> None:
    async with MandosPeer([Reply("silent")]) as peer:
        client = await start_client([f"--connect={peer.connect}", *keyset.args()])
        try:
            await peer.connected.wait()
            rc, out, err = await client.terminate(sig, limit=10)
        finally:
            await client.stop()
    assert (rc, out) == (-sig, b"")
    _no_traceback(err)


@pytest.mark.parametrize(
    "broken",
    ["pubkey", "seckey", "tls-pubkey", "tls-privkey", "tls-mismatch", "tls-garbage", "pgp-garbage"],
)
async def test_unusable_key_files_exit_69(keyset: KeySet, broken: str, tmp_path: Path) -> None:
    args = keyset.args()
    named = tmp_path / "missing"
    if broken == "tls-mismatch":
        from mandos.adapters.gnutls import generate_ed25519_keypair

        named = tmp_path / "other.pem"
        named.write_bytes(generate_ed25519_keypair()[0])
        args.append(f"--tls-privkey={named}")
    elif broken == "tls-garbage":
        named = tmp_path / "garbage.pem"
        named.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        args.append(f"--tls-privkey={named}")
    elif broken == "pgp-garbage":
        named = tmp_path / "junk.txt"
        named.write_text("not a key\n")
        args.append(f"--seckey={named}")
    else:
        args.append(f"--{broken}={named}")
    client = await start_client(["--connect=127.0.0.1:9", *args])
    try:
        rc, out, err = await client.finish()
    finally:
        await client.stop()
    assert (rc, out) == (69, b"")
    assert len(err.splitlines()) == 1, err
    assert err.count(str(named)) == 1, err  # translated once: no wrapping around it
    if broken == "tls-garbage":  # only the bad file is named, by the code that read it
        assert f"{named}: cannot be read: " in err
        assert str(keyset.tls_pubkey) not in err
    _no_traceback(err)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--retry=soon"], "Bad retry interval"),
        (["--connect=nohost"], "No colon in address"),
        (["--connect=example.org:80"], "Bad address"),
        (["--bogus"], "unrecognized option"),
        (["extra"], "Too many arguments"),
    ],
)
async def test_usage_errors_exit_64(argv: list[str], message: str) -> None:
    client = await start_client(argv)
    try:
        rc, out, err = await client.finish()
    finally:
        await client.stop()
    assert (rc, out) == (64, b"")
    assert err.splitlines()[0] == f"mandos-client: {err.splitlines()[0].split(': ', 1)[1]}"
    assert message in err
    _no_traceback(err)


async def test_opens_a_real_luks2_image(keyset: KeySet, tmp_path: Path) -> None:
    password = os.urandom(32)
    image, keyfile = tmp_path / "disk.img", tmp_path / "key"
    keyfile.write_bytes(password)
    with image.open("wb") as f:
        f.truncate(20 * 1024 * 1024)
    format_cmd = ["cryptsetup", "luksFormat", "--type", "luks2", "--pbkdf", "pbkdf2"]
    format_cmd += ["--pbkdf-force-iterations", "1000", "--batch-mode", str(image)]
    await asyncio.to_thread(
        subprocess.run, [*format_cmd, "--key-file", str(keyfile)], check=True, timeout=120
    )
    async with MandosPeer([Reply("secret", keyset.pgp.encrypt(password))]) as peer:
        rc, out, err = await _fetch(keyset, peer)
    assert rc == 0, err
    test = ["cryptsetup", "open", "--test-passphrase", str(image), "--key-file", "-"]
    right = await asyncio.to_thread(subprocess.run, test, input=out, timeout=120, check=False)
    assert right.returncode == 0
    wrong = await asyncio.to_thread(
        subprocess.run, test, input=out + b"x", capture_output=True, timeout=120, check=False
    )
    assert wrong.returncode != 0


async def test_connect_path_imports_no_zeroconf(keyset: KeySet) -> None:
    """With --connect, neither zeroconf nor asyncio (nor D-Bus, textual) is imported: fast start.

    Nor hashlib: it loads OpenSSL's libcrypto, 3.4 MiB of the client's peak RSS. Nor
    shamir-mnemonic: one server cannot make a threshold.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", "-c", CLIENT, "--connect=127.0.0.1:9", *keyset.args(),
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    client = ClientRun(proc)
    try:
        await client.wait_for_lines("127.0.0.1:9")
        _, _, err = await client.terminate()
    finally:
        await client.stop()
    imported = {
        ln.split("|")[-1].strip() for ln in err.splitlines() if ln.startswith("import time")
    }
    assert "mandos.client.attempt" in imported
    heavy = {
        m
        for m in imported
        if m.split(".")[0]
        in {
            "zeroconf",
            "ifaddr",
            "dbus_fast",
            "textual",
            "asyncio",
            "ssl",
            "hashlib",
            "_hashlib",
            "shamir_mnemonic",
        }
    }
    assert not heavy
    assert "mandos.client.discovery" not in imported


async def test_whole_connect_run_imports_only_what_it_uses(keyset: KeySet) -> None:
    """A --connect run to an IPv4 address, decryption included, imports neither dataclasses
    (with inspect, ast, dis, tokenize: ~1.2 MiB of peak RSS), pathlib (with urllib.parse:
    ~0.6 MiB), typing and re (~1 MiB), ipaddress, termios, nor, as it logs nothing, logging
    (with traceback, threading: ~0.7 MiB); nor enum, functools, collections, contextlib,
    socket, selectors, signal, weakref (~1.2 MiB together): docs/performance.md, "Client
    memory".
    """
    secret = keyset.pgp.encrypt(b"lean")
    async with MandosPeer([Reply("secret", secret)]) as peer:
        client = await start_client(
            [f"--connect={peer.connect}", *keyset.args()], env={"PYTHONPROFILEIMPORTTIME": "1"}
        )
        try:
            rc, out, err = await client.finish()
        finally:
            await client.stop()
    assert (rc, out) == (0, b"lean"), err
    imported = {
        ln.split("|")[-1].strip() for ln in err.splitlines() if ln.startswith("import time")
    }
    assert {"mandos.client.attempt", "mandos.adapters.openpgp", "pysequoia"} <= imported
    unused = {"dataclasses", "inspect", "pathlib", "urllib.parse", "logging", "threading"}
    unused |= {"typing", "re", "ipaddress", "termios"}
    unused |= {"enum", "functools", "collections", "contextlib", "socket", "selectors", "signal"}
    unused |= {"weakref"}
    assert not unused & imported
