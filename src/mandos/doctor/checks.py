"""mandos-doctor's judgements, pure: file contents and listings in, one verdict per link out.

Each function looks at what the I/O side (:mod:`mandos.doctor.main`) read and returns a
:class:`Check`: ok, or FAILED with what is wrong and how to fix it, in words an admin can act
on. Nothing here reads a file, runs a program or prints.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

KEY_FILES: Final = ("pubkey.txt", "seckey.txt", "tls-pubkey.pem", "tls-privkey.pem")
PRIVATE_KEYS: Final = frozenset({"seckey.txt", "tls-privkey.pem"})
#: What the initramfs must hold (paths inside it), and what each is.
INITRAMFS_NEEDS: Final = (
    ("conf/conf.d/mandos/pubkey.txt", "the OpenPGP public key"),
    ("conf/conf.d/mandos/seckey.txt", "the OpenPGP secret key"),
    ("conf/conf.d/mandos/tls-pubkey.pem", "the TLS public key"),
    ("conf/conf.d/mandos/tls-privkey.pem", "the TLS private key"),
    ("lib/mandos/plugins.d/mandos-client", "mandos-client"),
    ("lib/mandos/plugin-runner", "plugin-runner"),
    ("scripts/init-premount/mandos", "the init-premount hook"),
    ("scripts/local-premount/mandos", "the local-premount hook"),
)
KEYSCRIPTS: Final = ("plugin-runner", "mandos")


@dataclass(frozen=True, slots=True)
class Check:
    """One link: ``ok``, else ``problem`` and ``fix``; ``skipped`` when an earlier one failed."""

    name: str
    ok: bool
    detail: str = ""
    fix: str = ""
    skipped: bool = False

    def line(self) -> str:
        """``ok    keys: ...`` / ``FAILED keys: ... -- fix: ...`` / ``skip  ...``."""
        if self.skipped:
            return f"skip   {self.name}: {self.detail}"
        if self.ok:
            return f"ok     {self.name}: {self.detail}".rstrip(": ")
        fix = f" -- fix: {self.fix}" if self.fix else ""
        return f"FAILED {self.name}: {self.detail}{fix}"


def keys_check(
    keydir: str,
    modes: Mapping[str, int | None],
    dir_mode: int | None,
    unreadable: Iterable[str] = (),
) -> Check:
    """The four key files exist and we can read them; private ones (and the directory) are
    not readable by others.

    ``modes`` maps each of :data:`KEY_FILES` to its st_mode, None when missing.
    """
    name = "keys"
    if dir_mode is None:
        return Check(name, False, f"{keydir} does not exist", "run mandos-keygen")
    missing = [k for k in KEY_FILES if modes.get(k) is None]
    if missing:
        return Check(
            name,
            False,
            f"missing in {keydir}: {', '.join(missing)}",
            f"run mandos-keygen --dir {keydir} (then update the server's clients.conf)",
        )
    blocked = list(unreadable)
    if blocked:
        return Check(
            name,
            False,
            f"cannot read {', '.join(blocked)} in {keydir}",
            "run mandos-doctor as root",
        )
    loose = [k for k in sorted(PRIVATE_KEYS) if (modes[k] or 0) & 0o077]
    if loose:
        return Check(
            name,
            False,
            f"readable by group or others: {', '.join(loose)}",
            f"chmod 0600 {' '.join(f'{keydir}/{k}' for k in loose)}",
        )
    if dir_mode & 0o077:
        return Check(name, False, f"{keydir} is open to others", f"chmod 0700 {keydir}")
    return Check(name, True, f"{keydir}: all four keys, private ones 0600")


def initramfs_check(image: str, listing: Iterable[str]) -> Check:
    """The initramfs lists every file of :data:`INITRAMFS_NEEDS`."""
    have = {entry.strip().lstrip("./").removeprefix("main/") for entry in listing}
    missing = [what for path, what in INITRAMFS_NEEDS if path not in have]
    if missing:
        return Check(
            "initramfs",
            False,
            f"{image} lacks {', '.join(missing)}",
            "check /etc/keys/mandos, then update-initramfs -u",
        )
    return Check("initramfs", True, f"{image} holds the keys, the client and the hooks")


@dataclass(frozen=True, slots=True)
class CrypttabLine:
    """One line of /etc/crypttab."""

    target: str
    source: str
    keyfile: str
    options: dict[str, str]


def parse_crypttab(text: str) -> list[CrypttabLine]:
    """The lines of crypttab(5) (comments and blank lines skipped; bad lines too)."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        opts: dict[str, str] = {}
        for item in (fields[3] if len(fields) > 3 else "").split(","):
            key, _, value = item.partition("=")
            if key:
                opts[key] = value
        keyfile = fields[2] if len(fields) > 2 else "none"
        out.append(CrypttabLine(fields[0], fields[1], keyfile, opts))
    return out


def crypttab_check(lines: list[CrypttabLine], root_target: str | None) -> Check:
    """The root device's line (``root_target``, else the only/first line) has our keyscript."""
    name = "crypttab"
    if not lines:
        return Check(name, False, "no lines in /etc/crypttab", "add the root device's line")
    chosen = next((c for c in lines if c.target == root_target), None) or lines[0]
    script = chosen.options.get("keyscript", "")
    if not any(word in script for word in KEYSCRIPTS):
        return Check(
            name,
            False,
            f"the line of {chosen.target} has no Mandos keyscript"
            + (f" (keyscript={script})" if script else ""),
            f"add keyscript=/usr/lib/mandos/plugin-runner to the options of {chosen.target},"
            " then update-initramfs -u",
        )
    return Check(name, True, f"{chosen.target} uses keyscript={script}")


def _cmdline_params(cmdline: str) -> dict[str, str]:
    words = shlex.split(cmdline) if cmdline else []
    return dict(w.partition("=")[::2] for w in words if "=" in w)


def connect_from_cmdline(cmdline: str) -> str | None:
    """ADDRESS:PORT of ``mandos=connect:ADDRESS:PORT`` on the kernel command line, if any."""
    for option in _cmdline_params(cmdline).get("mandos", "").split(","):
        if option.startswith("connect:"):
            return option.removeprefix("connect:") or None
    return None


def network_check(cmdline: str, initramfs_conf: Mapping[str, str], connect: str | None) -> Check:
    """The initramfs runs Mandos with a network: no ``mandos=off``, no ``ip=off``/``none``."""
    name = "initramfs networking"
    params = _cmdline_params(cmdline)
    ip = params.get("ip", initramfs_conf.get("IP", ""))
    mandos = params.get("mandos", "")
    if "off" in mandos.split(","):
        return Check(
            name,
            False,
            "mandos=off on the kernel command line: Mandos does not run at boot",
            "remove mandos=off from the kernel command line (GRUB_CMDLINE_LINUX)",
        )
    if ip in ("off", "none"):  # then mandos-client has no network, --connect or not
        return Check(
            name,
            False,
            f"ip={ip} turns networking off in the initramfs",
            "remove ip=off (or set ip=dhcp) on the kernel command line",
        )
    device = ip.split(":")[5] if ip.count(":") >= 5 else ""
    device = device or initramfs_conf.get("DEVICE", "")
    said = [f"ip={ip or 'dhcp (default)'}"]
    if device:
        said.append(f"DEVICE={device}")
    if mandos:
        said.append(f"mandos={mandos}")
    if connect:
        said.append(f"--connect={connect}")
    return Check(name, True, ", ".join(said))


def connect_from_runner_conf(text: str) -> str | None:
    """The ``--connect=ADDRESS:PORT`` given to mandos-client in plugin-runner.conf, if any."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        for word in shlex.split(line) if line.strip() else []:
            for option in word.split(","):
                _, sep, value = option.partition("--connect=")
                if sep and value:
                    return value
    return None


def parse_shell_conf(text: str) -> dict[str, str]:
    """``KEY=value`` lines of initramfs.conf-like files (the last one wins)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip().strip("\"'")
    return out
