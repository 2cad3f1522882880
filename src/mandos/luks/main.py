"""mandos-luks: bind LUKS volumes to Mandos, list, rotate, unbind and test the bindings.

Exit status: 0 on success; 64 (EX_USAGE) for a bad command line; 65 (EX_DATAERR) when a
command is refused (not LUKS, wrong passphrase, no free slot, not ours, last slot), with every
header as it was; 66 (EX_NOINPUT) for unusable key files; 75 (EX_TEMPFAIL) when a rotation is
still pending (both key slots stay); 1 when ``test`` found a failing step.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Final

from mandos import __version__
from mandos.client.args import ConnectTarget, parse_connect
from mandos.core.durations import parse_duration
from mandos.core.errors import ConfigError, MandosError, UsageError
from mandos.keygen.threshold import ThresholdPlan, plan
from mandos.luks import commands, host, store
from mandos.luks.cryptsetup import Cryptsetup

PROG: Final = "mandos-luks"
DEFAULT_TIMEOUT: Final = "PT5M"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _connect(raw: str) -> ConnectTarget:
    try:
        return parse_connect(raw)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(f"{raw!r}: {exc}") from None


def _duration(raw: str) -> timedelta:
    try:
        return parse_duration(raw)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a duration (e.g. PT90S, 2m)") from None


def _common() -> _Parser:
    p = _Parser(add_help=False)
    g = p.add_argument_group("files")
    g.add_argument("--keydir", metavar="DIR", help="the client's key files (as mandos-keygen)")
    g.add_argument(
        "--record-dir", metavar="DIR", default=store.DEFAULT_RECORD_DIR,
        help=f"LUKS1 binding records (default {store.DEFAULT_RECORD_DIR})",
    )  # fmt: skip
    g.add_argument(
        "--backup-dir", metavar="DIR", default=store.DEFAULT_BACKUP_DIR,
        help=f"root-only header backups while changing (default {store.DEFAULT_BACKUP_DIR})",
    )  # fmt: skip
    g.add_argument("--cryptsetup", metavar="PROGRAM", default="cryptsetup", help=argparse.SUPPRESS)
    return p


def _changing() -> _Parser:
    """Options of the commands that add a key slot and write a section."""
    p = _Parser(add_help=False)
    p.add_argument("--output", metavar="FILE", help="write the clients.conf section here (0600)")
    p.add_argument("--no-ssh", action="store_true", help="no ssh-keyscan checker in the section")
    p.add_argument("--key-type", default="RSA", metavar="TYPE", help="new OpenPGP key type (RSA)")
    p.add_argument("--subkey-type", default="RSA", metavar="TYPE", help="its subkey type (RSA)")
    p.add_argument("--no-initramfs", action="store_true", help="do not rebuild the initramfs")
    p.add_argument(
        "--update-initramfs", metavar="COMMAND", default=host.DEFAULT_UPDATE_INITRAMFS,
        help=f"how to rebuild the initramfs (default: {host.DEFAULT_UPDATE_INITRAMFS})",
    )  # fmt: skip
    t = p.add_argument_group(
        "threshold (one section file per server, as mandos-keygen --threshold)"
    )
    t.add_argument("--threshold", type=int, metavar="K", help="any K shares rebuild the passphrase")
    t.add_argument("--shares", type=int, metavar="N", help="split it into N shares, one per server")
    t.add_argument(
        "--output-dir", metavar="DIR", help="write DIR/NAME.share-I.conf files instead of --output"
    )
    k = p.add_argument_group("key slot settings (passed to cryptsetup luksAddKey)")
    k.add_argument("--pbkdf", metavar="NAME", help="argon2id, argon2i or pbkdf2")
    k.add_argument("--pbkdf-force-iterations", metavar="N", type=int, help="fixed iterations")
    k.add_argument("--iter-time", metavar="MS", type=int, help="benchmark for this long")
    return p


def _fetching() -> _Parser:
    p = _Parser(add_help=False)
    p.add_argument(
        "--connect", metavar="ADDR:PORT", type=_connect, action="append", default=[],
        help="ask this server (repeatable); default: the servers Zeroconf finds",
    )  # fmt: skip
    return p


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, one subcommand each."""
    p = _Parser(prog=PROG, description="Bind LUKS volumes to Mandos and rotate their keys.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common, changing, fetching = _common(), _changing(), _fetching()

    b = sub.add_parser(
        "bind", parents=[common, changing], help="add a Mandos key slot to each DEVICE",
        description="Add a fresh random passphrase to a free key slot of every DEVICE, record "
        "the binding and print the server's clients.conf section for this client.",
    )  # fmt: skip
    b.add_argument("--name", help="the client's name on the server (default: the FQDN)")
    b.add_argument("--key-file", metavar="FILE", help="existing passphrase ('-': stdin)")
    b.add_argument("--no-crypttab", action="store_true", help="leave /etc/crypttab alone")
    b.add_argument(
        "--crypttab", metavar="FILE", default=host.DEFAULT_CRYPTTAB,
        help=f"the crypttab to add 'initramfs' to (default {host.DEFAULT_CRYPTTAB})",
    )  # fmt: skip
    b.add_argument("devices", nargs="+", metavar="DEVICE", help="LUKS1 or LUKS2 volume")

    ls = sub.add_parser(
        "list", parents=[common], help="show the Mandos bindings",
        description="One line per Mandos binding: device, slot, client, key ID, generation, "
        "creation time (and 'pending' during a rotation).",
    )  # fmt: skip
    ls.add_argument("--json", action="store_true", help="a JSON list instead of lines")
    ls.add_argument(
        "devices", nargs="*", metavar="DEVICE", help="default: every LUKS device blkid finds"
    )

    r = sub.add_parser(
        "rotate", parents=[common, changing, fetching], help="replace the Mandos passphrase",
        description="Add a new random passphrase (generation + 1) in a new slot and write the "
        "new section; then ask the server(s) until they serve the new secret and it opens every "
        "DEVICE, and only then remove the old slot. --finish completes a pending rotation.",
    )  # fmt: skip
    r.add_argument("--keys", action="store_true", help="also replace the client's keys")
    r.add_argument("--finish", action="store_true", help="complete a pending rotation")
    r.add_argument(
        "--timeout", type=_duration, default=parse_duration(DEFAULT_TIMEOUT), metavar="DURATION",
        help=f"how long to wait for the new secret (default {DEFAULT_TIMEOUT})",
    )  # fmt: skip
    r.add_argument("--retry", type=float, default=5.0, metavar="SECONDS", help="ask this often")
    r.add_argument("--key-file", metavar="FILE", help="unlock with this passphrase instead")
    r.add_argument("devices", nargs="+", metavar="DEVICE", help="bound volumes of one client")

    u = sub.add_parser(
        "unbind", parents=[common], help="remove a Mandos key slot",
        description="Remove the Mandos key slot (or --slot N) and its record; the last key "
        "slot of a volume is never removed.",
    )  # fmt: skip
    u.add_argument("--slot", type=int, metavar="N", help="the slot to remove")
    u.add_argument("device", metavar="DEVICE", help="a bound volume")

    t = sub.add_parser(
        "test", parents=[common, fetching], help="fetch now and try the passphrase",
        description="Fetch the secret now, decrypt it and check that it opens each DEVICE; "
        "says which step failed. Exit status 0 only if every step passed.",
    )  # fmt: skip
    t.add_argument("devices", nargs="+", metavar="DEVICE", help="bound volumes")
    return p


def make_env(opts: argparse.Namespace) -> commands.Env:
    """Adapters for these options."""
    kdf: list[str] = []
    for flag in ("pbkdf", "pbkdf_force_iterations", "iter_time"):
        value = getattr(opts, flag, None)
        if value is not None:
            kdf.append(f"--{flag.replace('_', '-')}={value}")
    cs = Cryptsetup(opts.cryptsetup, kdf)
    keydir = Path(opts.keydir) if opts.keydir else host.default_keydir()
    bindings = store.BindingStore(cs, Path(opts.record_dir))
    return commands.Env(cs, bindings, Path(opts.backup_dir), keydir)


def _refuse_repeats(devices: Sequence[str]) -> None:
    """The same volume named twice (by any path) would get two slots: a usage error."""
    seen: dict[str, str] = {}
    for device in devices:
        real = os.path.realpath(device)
        if real in seen:
            raise UsageError(f"{device} and {seen[real]} are the same device")
        seen[real] = device


def _split(opts: argparse.Namespace) -> ThresholdPlan | None:
    """--threshold, --shares and --output-dir, checked together; None without them."""
    split = plan(opts.threshold, opts.shares, opts.output_dir)
    if split is not None and opts.output is not None:
        raise UsageError("--output and --output-dir exclude each other")
    return split


COMMANDS: Final = {
    "bind": commands.bind,
    "list": commands.list_bindings,
    "rotate": commands.rotate,
    "unbind": commands.unbind,
    "test": commands.test,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run mandos-luks; returns the exit status."""
    # The client's per-server log lines (client/threshold.py) are for mandos-client's stderr;
    # mandos-luks says what happened in its own lines.
    logging.getLogger("mandos.client").addHandler(logging.NullHandler())
    logging.getLogger("mandos.client").propagate = False
    try:
        opts = build_parser().parse_args(argv)
        os.umask(0o077)
        if opts.command == "list" and not opts.devices:
            opts.devices = store.luks_devices()
        _refuse_repeats(getattr(opts, "devices", []))
        if opts.command in ("bind", "rotate"):
            opts.split = _split(opts)
        return COMMANDS[opts.command](make_env(opts), opts)
    except MandosError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
