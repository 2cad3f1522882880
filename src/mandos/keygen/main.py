"""mandos-keygen: make a Mandos client's TLS and OpenPGP keys, or its clients.conf section.

Compatible with the reference mandos-keygen(8) of Mandos 1.8.16: the same options, files
(seckey.txt, pubkey.txt, tls-privkey.pem, tls-pubkey.pem; mode 0600, umask 077) and output.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import termios
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Final, TextIO

from mandos import __version__
from mandos.adapters import openpgp
from mandos.core.errors import KeyFileError, KeyGenError, MandosError, UsageError
from mandos.keygen import render, threshold, tools

PROG: Final = "mandos-keygen"
KEY_FILES: Final = ("seckey.txt", "pubkey.txt", "tls-privkey.pem", "tls-pubkey.pem")
_IFS_WHITESPACE: Final = b" \t\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command line of mandos-keygen(8)."""
    p = _Parser(
        prog=PROG,
        add_help=False,
        description="Generate key and password for Mandos client and server.",
    )
    p.add_argument("-v", "--version", action="store_true", help="show the version and exit")
    p.add_argument("-h", "--help", action="store_true", help="show this help message and exit")
    p.add_argument("-d", "--dir", metavar="DIR", help="target directory for key files")
    g = p.add_argument_group("key creation options")
    g.add_argument("-t", "--type", default="RSA", metavar="TYPE", help="OpenPGP key type (RSA)")
    g.add_argument("-l", "--length", default="4096", metavar="BITS", help="key length (4096)")
    g.add_argument("-s", "--subtype", default="RSA", metavar="TYPE", help="subkey type (RSA)")
    g.add_argument("-L", "--sublength", default="4096", metavar="BITS", help="subkey length")
    g.add_argument("-n", "--name", metavar="NAME", help="name of key (default: the FQDN)")
    g.add_argument("-e", "--email", default="", metavar="ADDRESS", help="email address of key")
    g.add_argument("-c", "--comment", default="", metavar="TEXT", help="comment field of key")
    g.add_argument("-x", "--expire", default="0", metavar="TIME", help="expire time, gpg syntax")
    g.add_argument("-T", "--tls-keytype", default="ed25519", metavar="TYPE", help="TLS key type")
    g.add_argument("-f", "--force", action="store_true", help="overwrite old key files")
    w = p.add_argument_group("password creation options")
    w.add_argument("-p", "--password", action="store_true", help="prompt for a password")
    w.add_argument("-F", "--passfile", metavar="FILE", help="read the password from FILE")
    w.add_argument("-S", "--no-ssh", action="store_true", help="no ssh-keyscan checker")
    k = p.add_argument_group("threshold options (with --password or --passfile)")
    k.add_argument("--threshold", type=int, metavar="K", help="any K shares rebuild the password")
    k.add_argument("--shares", type=int, metavar="N", help="split the password into N shares")
    k.add_argument("--output-dir", metavar="DIR", help="write DIR/NAME.share-I.conf files")
    return p


def default_directory() -> Path:
    """/etc/keys/mandos, or /etc/mandos/keys if the former does not exist."""
    first = Path("/etc/keys/mandos")
    return first if first.is_dir() else Path("/etc/mandos/keys")


def check_directory(directory: Path, *, writable: bool) -> None:
    """Raise unless DIRECTORY is a readable (and, if asked, really writable) directory."""
    if not directory.is_dir():
        raise KeyFileError(f"{directory}: not a directory")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise KeyFileError(f"{directory}: directory not readable")
    if writable:
        try:  # os.access() says yes to root even on a read-only file system: try for real
            fd, probe = tempfile.mkstemp(prefix=".mandos-keygen-", dir=directory)
            os.close(fd)
            Path(probe).unlink()
        except OSError:
            raise KeyGenError(f"{directory}: directory not writable") from None


def make_keys(opts: argparse.Namespace, directory: Path) -> list[Path]:
    """Generate and write the four key files; returns the backups made of old files."""
    spec = render.KeySpec(
        name=opts.name,
        key_type=render.parse_key_type(opts.type, render.PRIMARY_TYPES, "--type"),
        key_length=render.parse_key_length(opts.length, "--length"),
        subkey_type=render.parse_key_type(opts.subtype, render.SUBKEY_TYPES, "--subtype"),
        subkey_length=render.parse_key_length(opts.sublength, "--sublength"),
        email=opts.email,
        comment=opts.comment,
        expire=opts.expire,
    )
    tls_type = render.parse_tls_key_type(opts.tls_keytype)
    check_directory(directory, writable=True)
    paths = [directory / name for name in KEY_FILES]
    if not opts.force and any(p.exists() or p.is_symlink() for p in paths):
        raise KeyGenError("refusing to overwrite old key files; use --force")
    tls_priv, tls_pub = tools.generate_tls_key(tls_type)
    pub, sec = tools.generate_openpgp_key(spec)
    backups = []
    for path, data in zip(paths, (sec, pub, tls_priv, tls_pub), strict=True):
        old = tools.write_private(path, data, backup=opts.force)
        if old is not None:
            backups.append(old)
    return backups


@contextlib.contextmanager
def _no_echo(stream: BinaryIO) -> Iterator[bool]:
    """Turn off echo while reading a passphrase from a terminal; yields whether it is one."""
    try:
        fd = stream.fileno()
        old = termios.tcgetattr(fd)
    except (OSError, ValueError, termios.error):
        yield False
        return
    new = list(old)
    new[3] = new[3] & ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSADRAIN, new)
    try:
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def _prompt_stream() -> TextIO:
    try:
        return Path("/dev/tty").open("w")  # closed by the caller
    except OSError:
        return sys.stderr


def read_passphrase(stdin: BinaryIO, prompts: TextIO) -> bytes:
    """Ask twice ('Enter'/'Repeat passphrase: '); strip blanks as sh's read -r does.

    On a terminal a mismatch asks again; otherwise it is an error.
    """
    while True:
        with _no_echo(stdin) as on_tty:
            answers: list[bytes] = []
            for prompt in ("Enter passphrase: ", "Repeat passphrase: "):
                prompts.write(prompt)
                prompts.flush()
                line = stdin.readline()
                if on_tty:
                    prompts.write("\n")
                if not line and answers:
                    raise UsageError(
                        "the passphrase was not repeated (give it twice, one line each)"
                    )
                if not line:
                    raise UsageError("no passphrase given")
                answers.append(line.strip(_IFS_WHITESPACE))
        if answers[0] == answers[1]:
            return answers[0]
        if not on_tty:
            raise KeyGenError("passphrase mismatch")
        prompts.write("Passphrase mismatch\n")


def _read_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc.strerror}") from None


def read_password(opts: argparse.Namespace) -> bytes:
    """The passphrase from --passfile, or asked for twice."""
    if opts.passfile is not None:
        if opts.passfile == "-":
            passphrase = sys.stdin.buffer.read()
        else:
            passphrase = _read_key(Path(opts.passfile))
    else:
        prompts = _prompt_stream()
        try:
            passphrase = read_passphrase(sys.stdin.buffer, prompts)
        finally:
            if prompts is not sys.stderr:
                prompts.close()
    return passphrase


def section_maker(opts: argparse.Namespace, directory: Path) -> Callable[[bytes], str]:
    """Encrypts a payload to the keys in DIRECTORY and gives the clients.conf section for it."""
    check_directory(directory, writable=False)
    pub = _read_key(directory / "pubkey.txt")
    sec = _read_key(directory / "seckey.txt")
    fingerprint = openpgp.fingerprint(pub)
    key_id = tools.tls_key_id(directory)
    ssh = None if opts.no_ssh else tools.ssh_host_key("localhost")

    def section(payload: bytes) -> str:
        message = openpgp.encrypt(payload, pub, seckey_armored=sec)
        return render.client_section(opts.name, fingerprint, message, key_id=key_id, ssh=ssh)

    return section


def password_section(opts: argparse.Namespace, directory: Path) -> str:
    """Encrypt a passphrase to the keys in DIRECTORY; the clients.conf section for it."""
    section = section_maker(opts, directory)
    return section(read_password(opts))


def main(argv: Sequence[str] | None = None) -> int:
    """Run mandos-keygen; returns the exit status."""
    parser = build_parser()
    try:
        opts = parser.parse_args(argv)
        if opts.help:
            parser.print_help()
            return 0
        if opts.version:
            print(f"{PROG} {__version__}")
            return 0
        os.umask(0o077)
        if opts.name is None:
            opts.name = tools.fqdn()
        directory = Path(opts.dir) if opts.dir else default_directory()
        split = threshold.plan(opts.threshold, opts.shares, opts.output_dir)
        if split is not None:
            if not (opts.password or opts.passfile is not None):
                raise UsageError("--threshold needs --password or --passfile")
            section = section_maker(opts, directory)
            paths = threshold.write_shares(
                split, opts.name, read_password(opts), section, force=opts.force
            )
            print("\n".join(str(path) for path in paths))
        elif opts.password or opts.passfile is not None:
            sys.stdout.write(password_section(opts, directory))
            sys.stdout.flush()
        else:
            for old in make_keys(opts, directory):
                print(f"{PROG}: kept the old file as {old}", file=sys.stderr)
    except MandosError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
