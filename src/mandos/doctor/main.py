"""mandos-doctor: check every link of this client's unattended unlock, one line per link.

Run as root on the booted client. Links, in order: the keys, the current initramfs, crypttab's
root line, initramfs networking, finding a server, the TLS handshake, the server sending the
secret, the secret decrypting, and the secret opening the root device (``cryptsetup open
--test-passphrase``). A link that cannot be checked because an earlier one failed is skipped.
Exit status 0 only if every check passed; 1 otherwise; 2 for a usage error. The secret is
never printed; it goes to cryptsetup on its standard input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from mandos.core.errors import AttemptFailed, MandosError
from mandos.core.values import Secret
from mandos.doctor import checks
from mandos.doctor.checks import Check

PROG: Final = "mandos-doctor"
ZEROCONF_SECONDS: Final = 10.0


@dataclass
class Context:
    """What later links need from earlier ones."""

    opts: argparse.Namespace
    crypt: list[checks.CrypttabLine] = field(default_factory=list)
    address: tuple[str, int] | None = None
    blob: bytes | None = None
    secret: Secret | None = None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode
    except OSError:
        return None


def check_keys(ctx: Context) -> Check:
    keydir = Path(ctx.opts.keydir)
    modes = {name: _mode(keydir / name) for name in checks.KEY_FILES}
    unreadable = [
        name
        for name, mode in modes.items()
        if mode is not None and not os.access(keydir / name, os.R_OK)
    ]
    return checks.keys_check(str(keydir), modes, _mode(keydir), unreadable)


def check_initramfs(ctx: Context) -> Check:
    image = ctx.opts.initramfs or f"/boot/initrd.img-{os.uname().release}"
    if not Path(image).exists():
        return Check("initramfs", False, f"{image} does not exist", "update-initramfs -c -k all")
    tool = shutil.which("lsinitramfs")
    if tool is None:
        return Check("initramfs", False, "lsinitramfs not found", "apt-get install initramfs-tools")
    done = subprocess.run([tool, image], capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        return Check("initramfs", False, f"lsinitramfs {image} failed", "update-initramfs -u")
    return checks.initramfs_check(image, done.stdout.splitlines())


def check_crypttab(ctx: Context) -> Check:
    ctx.crypt = checks.parse_crypttab(_read(ctx.opts.crypttab))
    return checks.crypttab_check(ctx.crypt, ctx.opts.root_name)


def check_network(ctx: Context) -> Check:
    conf: dict[str, str] = {}
    base = Path(ctx.opts.initramfs_conf)
    for path in [base / "initramfs.conf", *sorted((base / "conf.d").glob("*"))]:
        conf.update(checks.parse_shell_conf(_read(str(path))))
    return checks.network_check(_read(ctx.opts.cmdline).strip(), conf, ctx.opts.connect)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


async def _browse() -> tuple[str, int] | None:
    import mandos.client.discovery as discovery  # the client's own browse (a shared module)

    found: list[tuple[str, int]] = []
    done = asyncio.Event()

    def on_found(addr: object) -> None:
        found.append((str(getattr(addr, "host", "")), int(getattr(addr, "port", 0))))
        done.set()

    task = asyncio.ensure_future(discovery.browse(None, on_found))
    try:
        async with asyncio.timeout(ZEROCONF_SECONDS):
            await done.wait()
    except TimeoutError:
        pass
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return found[0] if found else None


def check_server(ctx: Context) -> Check:
    name = "server found"
    connect = (
        ctx.opts.connect
        or checks.connect_from_runner_conf(_read(ctx.opts.runner_conf))
        or checks.connect_from_cmdline(_read(ctx.opts.cmdline))
    )
    if connect:
        try:
            host, port = _split(connect)
            with socket.create_connection((host, port), timeout=ctx.opts.timeout):
                pass
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            return Check(
                name,
                False,
                f"cannot connect to {connect}: {reason}",
                "is the Mandos server running, and is the address in plugin-runner.conf right?",
            )
        ctx.address = (host, port)
        return Check(name, True, f"{connect} answers")
    try:
        ctx.address = asyncio.run(_browse())
    except MandosError as exc:
        return Check(name, False, f"Zeroconf browse failed: {exc}", "give --connect ADDRESS:PORT")
    if ctx.address is None:
        return Check(
            name,
            False,
            f"no Mandos server announced itself by Zeroconf within {ZEROCONF_SECONDS:.0f} s",
            "start the server (with Zeroconf), or set --connect in plugin-runner.conf",
        )
    return Check(name, True, f"found by Zeroconf at {ctx.address[0]} port {ctx.address[1]}")


def check_tls_and_fetch(ctx: Context) -> tuple[Check, Check]:
    import mandos.client.attempt as attempt  # the client's own exchange (shared modules)
    import mandos.client.session as session
    from mandos.adapters.gnutls.keys import public_key_id
    from mandos.adapters.gnutls.session import RawKeyCredentials
    from mandos.core.config import DEFAULT_PRIORITY

    assert ctx.address is not None
    host, port = ctx.address
    keydir = Path(ctx.opts.keydir)
    pub = (keydir / "tls-pubkey.pem").read_bytes()
    key_id = public_key_id(pub)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    limit = ctx.opts.timeout
    try:
        with RawKeyCredentials.from_pem(pub, (keydir / "tls-privkey.pem").read_bytes()) as cred:
            ctx.blob = asyncio.run(
                session.fetch_encrypted_secret(
                    family,
                    (host, port),
                    DEFAULT_PRIORITY,
                    cred,
                    attempt.Timeouts(connect=limit, handshake=limit, receive=limit),
                )
            )
    except AttemptFailed as exc:
        text = str(exc)
        if exc.refused:
            return Check("TLS handshake", True, f"key ID {key_id}"), Check(
                "server sends the secret",
                False,
                f"the server refused key ID {key_id}",
                "on the server: mandos-ctl --unknown (key unknown: add this client's section"
                " from mandos-keygen --password) or mandos-ctl --explain NAME",
            )
        return Check(
            "TLS handshake",
            False,
            text,
            "do the server and this client share a GnuTLS priority and raw-public-key support?",
        ), Check("server sends the secret", False, "not tried", skipped=True)
    return (
        Check("TLS handshake", True, f"key ID {key_id}"),
        Check("server sends the secret", True, f"{len(ctx.blob)} bytes of OpenPGP data"),
    )


def check_decrypt(ctx: Context) -> Check:
    from mandos.adapters import openpgp

    assert ctx.blob is not None
    keydir = Path(ctx.opts.keydir)
    try:
        plain = openpgp.decrypt(
            ctx.blob, (keydir / "seckey.txt").read_bytes(), (keydir / "pubkey.txt").read_bytes()
        )
    except OSError as exc:
        return Check("secret decrypts", False, f"cannot read the key: {exc.strerror}")
    except MandosError as exc:
        return Check(
            "secret decrypts",
            False,
            f"cannot decrypt what the server sent: {exc}",
            "the server's secret was made for another key: run mandos-keygen --password and"
            " replace this client's section on the server",
        )
    ctx.secret = Secret(plain)
    return Check("secret decrypts", True, f"{len(plain)} bytes")


def check_device(ctx: Context) -> Check:
    name = "opens the root device"
    assert ctx.secret is not None
    device = ctx.opts.device
    if device is None and ctx.crypt:
        chosen = next((c for c in ctx.crypt if c.target == ctx.opts.root_name), ctx.crypt[0])
        device = chosen.source
        if device.startswith("UUID="):
            device = f"/dev/disk/by-uuid/{device[5:]}"
    if not device:
        return Check(name, False, "no device to test", "give --device or fix /etc/crypttab")
    tool = shutil.which("cryptsetup")
    if tool is None:
        return Check(name, False, "cryptsetup not found", "apt-get install cryptsetup-bin")
    done = subprocess.run(
        [tool, "open", "--test-passphrase", "--key-file=-", device],
        input=ctx.secret.reveal(),
        capture_output=True,
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        return Check(
            name,
            False,
            f"the secret does not open {device} (cryptsetup exit {done.returncode})",
            "the server holds an old or wrong password: mandos-keygen --password with the"
            " device's passphrase, and replace the section on the server",
        )
    return Check(name, True, f"{device} accepts the secret")


def run_checks(opts: argparse.Namespace) -> list[Check]:
    """Every check in order; links after a failed prerequisite are skipped."""
    ctx = Context(opts)
    keys = check_keys(ctx)
    results = [keys, check_initramfs(ctx), check_crypttab(ctx), check_network(ctx)]
    server = check_server(ctx)
    results.append(server)
    later = ("TLS handshake", "server sends the secret", "secret decrypts", "opens the root device")
    if not (server.ok and keys.ok):
        why = "needs the keys" if not keys.ok else "needs a server"
        return results + [Check(n, False, why, skipped=True) for n in later]
    try:
        tls, fetch = check_tls_and_fetch(ctx)
    except (OSError, MandosError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        tls = Check("TLS handshake", False, f"cannot use the TLS key: {reason}", "mandos-keygen")
        fetch = Check("server sends the secret", False, "needs the TLS key", skipped=True)
    results += [tls, fetch]
    if not fetch.ok:
        return results + [Check(n, False, "needs the secret", skipped=True) for n in later[2:]]
    decrypted = check_decrypt(ctx)
    results.append(decrypted)
    if not decrypted.ok:
        return [*results, Check(later[3], False, "needs the secret", skipped=True)]
    results.append(check_device(ctx))
    return results


def build_parser() -> argparse.ArgumentParser:
    """mandos-doctor's command line."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Check every link of this client's unattended unlock by a Mandos server,"
        " one line per link (ok, FAILED and the fix, or skip). Run as root on the client.",
        epilog="Links: keys, initramfs, crypttab, initramfs networking, server found, TLS"
        " handshake, server sends the secret, secret decrypts, opens the root device."
        " Exit status 0 only if every check passed.",
    )
    p.add_argument(
        "--keydir",
        default="/etc/keys/mandos",
        metavar="DIR",
        help="the client's keys (default: %(default)s)",
    )
    p.add_argument(
        "--initramfs",
        metavar="FILE",
        help="the initramfs to inspect (default: /boot/initrd.img-$(uname -r))",
    )
    p.add_argument(
        "--crypttab", default="/etc/crypttab", metavar="FILE", help="default: %(default)s"
    )
    p.add_argument(
        "--root-name",
        metavar="NAME",
        help="crypttab target of the root file system (default: the first line)",
    )
    p.add_argument(
        "--device",
        metavar="DEV",
        help="LUKS device to test the secret on (default: that line's device)",
    )
    p.add_argument(
        "--cmdline",
        default="/proc/cmdline",
        metavar="FILE",
        help="kernel command line (default: %(default)s)",
    )
    p.add_argument(
        "--initramfs-conf",
        default="/etc/initramfs-tools",
        metavar="DIR",
        help="default: %(default)s",
    )
    p.add_argument(
        "--runner-conf",
        default="/etc/mandos/plugin-runner.conf",
        metavar="FILE",
        help="default: %(default)s",
    )
    p.add_argument(
        "--connect",
        metavar="ADDRESS:PORT",
        help="the server (default: --connect in plugin-runner.conf, else"
        " mandos=connect:ADDRESS:PORT on the kernel command line, else Zeroconf)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="for connecting, the handshake and receiving (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    return p  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run every check; 0 only if all passed."""
    opts = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        results = run_checks(opts)
    except KeyboardInterrupt:
        return 130
    if opts.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        for result in results:
            print(result.line())
    return 0 if all(r.ok and not r.skipped for r in results) else 1


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
