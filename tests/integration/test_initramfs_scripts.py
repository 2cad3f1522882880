"""The initramfs-tools boot script's pieces, run with sh: kernel options, runner options, crypttab.

The script is sourced with ``MANDOS_SOURCE_ONLY=1`` so that only its functions are defined;
each case then calls one function and prints what it set (REFERENCE A16).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IT = REPO / "integration" / "initramfs-tools"
PREMOUNT = IT / "scripts" / "init-premount" / "mandos"
SHELLS = [s for s in ("sh", "dash", "busybox") if shutil.which(s)]


def sh(script: str, shell: str = "sh", env: dict[str, str] | None = None) -> str:
    """Run ``script`` after sourcing the init-premount script; its stdout."""
    argv = [shell, "sh", "-c"] if shell == "busybox" else [shell, "-c"]
    full = f"MANDOS_SOURCE_ONLY=1 . {PREMOUNT}\n{script}"
    proc = subprocess.run(
        [*argv, full], capture_output=True, text=True, timeout=30, check=True, env=env or {}
    )
    return proc.stdout


def parse(cmdline: str, shell: str = "sh") -> dict[str, str]:
    out = sh(
        f"mandos_parse_cmdline '{cmdline}'\n"
        'echo "off=$mandos_off"; echo "connect=$mandos_connect"\n'
        'echo "address=$mandos_address"; echo "device=$mandos_ip_device"',
        shell,
    )
    return dict(line.split("=", 1) for line in out.splitlines())


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        ("quiet", {"off": "", "connect": "", "address": "", "device": ""}),
        ("mandos=off", {"off": "y", "connect": "", "address": "", "device": ""}),
        ("mandos=connect", {"off": "", "connect": "y", "address": "", "device": ""}),
        (
            "ro mandos=connect:10.0.2.100:1234 quiet",
            {"off": "", "connect": "y", "address": "10.0.2.100:1234", "device": ""},
        ),
        (
            "mandos=connect:[fe80::1%eth0]:4711",
            {"off": "", "connect": "y", "address": "[fe80::1%eth0]:4711", "device": ""},
        ),
        (
            "mandos=connect,off",
            {"off": "y", "connect": "y", "address": "", "device": ""},
        ),
        (
            "ip=10.0.2.15::10.0.2.2:255.255.255.0:guest:eth1:off mandos=connect",
            {"off": "", "connect": "y", "address": "", "device": "eth1"},
        ),
        ("ip=dhcp", {"off": "", "connect": "", "address": "", "device": ""}),
    ],
)
def test_kernel_options(shell: str, cmdline: str, expected: dict[str, str]) -> None:
    assert parse(cmdline, shell) == expected


def test_runner_options_config_device_first_then_ip_device_then_connect() -> None:
    out = sh(
        "mandos_parse_cmdline 'ip=:::::eth1:dhcp mandos=connect:10.1.1.1:99'\n"
        "mandos_runner_options eth0"
    )
    assert out.splitlines() == [
        "--options-for=mandos-client:--interface=eth0",
        "--options-for=mandos-client:--interface=eth1",
        "--options-for=mandos-client:--connect=10.1.1.1:99",
    ]


def test_runner_options_empty_without_options() -> None:
    assert sh("mandos_parse_cmdline 'quiet'\nmandos_runner_options ''") == ""


def wire(tmp_path: Path, lines: list[str]) -> list[str]:
    conf = tmp_path / "cryptroot"
    conf.write_text("".join(f"{line}\n" for line in lines))
    sh(f"mandos_wire_cryptroot {conf}", env={"MANDOS_LIB": "/lib/mandos"})
    return conf.read_text().splitlines()


KS = "keyscript=/lib/mandos/plugin-runner"


def test_old_cryptsetup_every_entry_without_keyscript_gets_ours(tmp_path: Path) -> None:
    assert wire(tmp_path, ["target=a,source=/dev/sda2,key=none", "target=b,source=/dev/sdb"]) == [
        f"target=a,source=/dev/sda2,key=none,{KS}",
        f"target=b,source=/dev/sdb,{KS}",
    ]


def test_old_cryptsetup_rootdev_entries_only_when_marked(tmp_path: Path) -> None:
    assert wire(
        tmp_path,
        ["target=root,source=/dev/sda2,rootdev", "target=home,source=/dev/sda3"],
    ) == [f"target=root,source=/dev/sda2,rootdev,{KS}", "target=home,source=/dev/sda3"]


def test_old_cryptsetup_keeps_keyscripts_and_skips_resume(tmp_path: Path) -> None:
    lines = [
        "target=root,source=/dev/sda2,keyscript=/bin/other",
        "target=swap,source=/dev/sda3,resumedev",
    ]
    assert wire(tmp_path, lines) == lines


def test_scripts_parse_with_sh() -> None:
    for script in (
        IT / "hooks" / "mandos",
        PREMOUNT,
        IT / "scripts" / "local-premount" / "mandos",
        IT / "mandos-to-cryptroot-unlock",
    ):
        subprocess.run(["sh", "-n", str(script)], check=True, timeout=30)


def test_prereqs() -> None:
    out = subprocess.run(
        ["sh", str(PREMOUNT), "prereqs"], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "udev"
    hook = subprocess.run(
        ["sh", str(IT / "hooks" / "mandos"), "prereqs"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert hook.stdout.strip() == "cryptroot"


def test_umask_conf_hook() -> None:
    assert "UMASK=0027" in (IT / "conf-hooks.d" / "zz-mandos").read_text().splitlines()


def test_bash_scripts_parse() -> None:
    for script in (
        REPO / "integration" / "install",
        REPO / "integration" / "dracut" / "90mandos" / "module-setup.sh",
        REPO / "integration" / "dracut" / "90mandos" / "cmdline-mandos.sh",
    ):
        subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
