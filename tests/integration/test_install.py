"""integration/install run for real, in a copy-on-write copy of this machine's root.

The install writes /usr/sbin, /usr/share/man, /etc/mandos and /var/lib/mandos, so each test runs
it chrooted into an overlay of / (upper layer on a tmpfs) inside a private mount namespace: the
real root is never touched, and everything vanishes with the namespace. ``--no-pip`` with this
checkout's venv as the prefix keeps it offline and fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREFIX = Path(sys.prefix)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare"
)

# Runs in the new mount namespace: build the overlay, chroot into it, run the script there.
_OVERLAY = """
set -e
t="$1"; shift
mount -t tmpfs tmpfs "$t"
mkdir "$t/u" "$t/w" "$t/m"
mount -t overlay overlay -o "lowerdir=/,upperdir=$t/u,workdir=$t/w" "$t/m"
mount --bind /proc "$t/m/proc"
mount --bind /dev "$t/m/dev"
exec chroot "$t/m" /bin/bash -c "$@"
"""


def in_scratch_root(tmp_path: Path, script: str) -> str:
    """Run ``script`` (bash) as root in a throwaway copy of /; its output."""
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", _OVERLAY, "overlay",
         str(tmp_path), "set -e\n" + script],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def install(*args: str) -> str:
    return f"bash {REPO}/integration/install --no-pip --prefix {PREFIX} {' '.join(args)} >&2\n"


def test_client_only_has_keygen_hooks_dir_and_client_pages(tmp_path: Path) -> None:
    out = in_scratch_root(
        tmp_path,
        install("--client-only")
        + "/usr/sbin/mandos-keygen --version\n"
        + "test ! -e /usr/sbin/mandos && echo no-server\n"
        + "test -d /etc/mandos/network-hooks.d && echo hooks-dir\n"
        + "man -w 8mandos plymouth; man -w mandos-keygen; man -w mandos-client\n",
    )
    lines = out.splitlines()
    assert lines[0].startswith("mandos-keygen ")
    assert lines[1:3] == ["no-server", "hooks-dir"]
    assert lines[3:] == [
        "/usr/share/man/man8/plymouth.8mandos.gz",
        "/usr/share/man/man8/mandos-keygen.8.gz",
        "/usr/share/man/man8/mandos-client.8mandos.gz",
    ]


def test_server_state_dir_belongs_to_mandos_and_man_mandos_works(tmp_path: Path) -> None:
    out = in_scratch_root(
        tmp_path,
        "rm -rf /var/lib/mandos\n"
        + install("--server-only")
        + "stat -c '%U:%G %a' /var/lib/mandos\n"
        + "man -w 8 mandos; man -w 5 mandos-clients.conf\n"
        + "man -P cat mandos | head -n 5\n",
    )
    lines = out.splitlines()
    assert lines[0] == "_mandos:_mandos 700"
    assert lines[1:3] == [
        "/usr/share/man/man8/mandos.8.gz",
        "/usr/share/man/man5/mandos-clients.conf.5.gz",
    ]
    assert "mandos - give encrypted disk passwords" in out


def test_a_root_owned_state_dir_is_given_to_mandos(tmp_path: Path) -> None:
    """As left by a server started by hand as root before install made the directory."""
    out = in_scratch_root(
        tmp_path,
        "rm -rf /var/lib/mandos; mkdir -m 0755 /var/lib/mandos\n"
        + install("--server-only")
        + "stat -c '%U:%G %a' /var/lib/mandos\n",
    )
    assert out.splitlines() == ["_mandos:_mandos 700"]


def test_systemd_units_verify(tmp_path: Path) -> None:
    """mandos.service and mandos.socket as installed: systemd-analyze finds nothing to say."""
    out = in_scratch_root(
        tmp_path,
        install("--server-only")
        + "cd /usr/lib/systemd/system\n"
        + "systemd-analyze verify mandos.socket mandos.service 2>&1; echo verify=$?\n",
    )
    assert out == "verify=0\n"
