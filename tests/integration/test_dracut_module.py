"""integration/dracut/90mandos/module-setup.sh's check(), run by bash as dracut runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "integration" / "dracut" / "90mandos" / "module-setup.sh"


def check(hostonly: str, *, installed: bool = True) -> int:
    """check()'s status, with the lib and key directories found (or not) and $hostonly set."""
    found = "echo /found" if installed else "return 1"
    script = (
        f'. "{SETUP}"\n'
        f"_mandos_libdir() {{ {found}; }}\n_mandos_keydir() {{ {found}; }}\n"
        f"MANDOS_PYTHON=/bin/true\nhostonly={hostonly}\ncheck\n"
    )
    return subprocess.run(["bash", "-c", script], timeout=30, check=False).returncode


def test_included_in_host_only_images_when_installed() -> None:
    # 0, not 255: dracut unsets $hostonly for a module asked for by name, so "only on request"
    # (255) could never be satisfied and the module was never in any image.
    assert check("yes") == 0


def test_refused_without_host_only_or_without_keys() -> None:
    assert check("''") == 1  # a generic image must not carry this host's keys
    assert check("yes", installed=False) == 1


def _gnutls() -> Path:
    for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"):
        if (Path(d) / "libgnutls.so.30").exists():
            return (Path(d) / "libgnutls.so.30").resolve()
    raise AssertionError("the tests need the system's libgnutls.so.30")


def test_libraries_of_non_executable_files_go_into_the_image(tmp_path: Path) -> None:
    """_mandos_python() installs what a 0644 shared object loads (dracut-install would not).

    python-files is stood in by a script that lists the host's real libgnutls (0644 on Debian);
    dracut's inst and inst_multiple record their arguments; ldd is the real one.
    """
    gnutls = _gnutls()
    assert not gnutls.stat().st_mode & 0o111  # why dracut-install skips its libraries
    lister = tmp_path / "python-files"
    lister.write_text(f"#!/bin/sh\necho {gnutls}\n")
    lister.chmod(0o755)
    script = (
        f'. "{SETUP}"\n'
        f"_mandos_libdir() {{ echo /found; }}\nMANDOS_PYTHON={lister}\ninitdir={tmp_path}\n"
        'inst() { echo "inst $*"; }\ninst_multiple() { echo "inst_multiple $*"; }\n'
        "_mandos_python\n"
    )
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=30, check=True
    ).stdout.splitlines()
    assert out[0] == f"inst {gnutls} {gnutls}"
    (libs,) = [line.split()[1:] for line in out if line.startswith("inst_multiple ")]
    names = {Path(lib).name.partition(".so")[0] for lib in libs}
    assert {"libnettle", "libhogweed", "libtasn1", "libc"} <= names
    assert not (tmp_path / ".mandos-exec-list").exists()


def _systemd_install(tmp_path: Path, *, dhparams: bool) -> tuple[str, str]:
    """install() for a systemd initrd, dracut's helpers stood in: (drop-in, service ExecStart)."""
    keydir = tmp_path / "keys"
    keydir.mkdir()
    if dhparams:
        (keydir / "dhparams.pem").write_text("DH PARAMETERS\n")
    initdir = tmp_path / "initrd"
    unitdir = "/usr/lib/systemd/system"
    script = (
        f'. "{SETUP}"\n'
        f"_mandos_libdir() {{ echo /found; }}\n_mandos_keydir() {{ echo {keydir}; }}\n"
        '_mandos_ids() { echo "108 112"; }\n_mandos_python() { :; }\n'
        "inst_multiple() { :; }\ninst_dir() { :; }\ninst_simple() { :; }\n"
        "chown() { :; }\nchmod() { :; }\n"
        'dracut_module_included() { [ "$1" = systemd ]; }\n'
        f"initdir={initdir}\nsystemdsystemunitdir={unitdir}\nmoddir={SETUP.parent}\ninstall\n"
    )
    subprocess.run(["bash", "-c", script], timeout=30, check=True)
    dropin = initdir / unitdir.lstrip("/") / "ask-password-mandos.service.d" / "00-mandos-ids.conf"
    service = (SETUP.parent / "ask-password-mandos.service").read_text()
    (exec_start,) = [line for line in service.splitlines() if line.startswith("ExecStart=")]
    return dropin.read_text(), exec_start


def test_an_admins_drop_in_adds_to_the_modules_options(tmp_path: Path) -> None:
    """The module's --user, --group and --dh-params are in variables of its own.

    An admin's drop-in that sets PASSWORD_AGENT_OPTIONS or MANDOS_CLIENT_OPTIONS (the admin
    guide's example) used to replace them: --dh-params was lost. Both variables now follow the
    module's on the command line, and the module's value is quoted: systemd reads an unquoted
    ``Environment=A=--user=108 --group=112`` as two assignments and dropped the group.
    """
    dropin, exec_start = _systemd_install(tmp_path, dhparams=True)
    assert dropin.splitlines() == [
        "[Service]",
        'Environment="MANDOS_MODULE_AGENT_OPTIONS=--user=108 --group=112"',
        "Environment=MANDOS_MODULE_CLIENT_OPTIONS=--dh-params=/etc/mandos/keys/dhparams.pem",
    ]
    agent, _, client = exec_start.partition(" -- ")
    assert agent.split()[1:] == ["$MANDOS_MODULE_AGENT_OPTIONS", "$PASSWORD_AGENT_OPTIONS"]
    assert client.split()[-2:] == ["$MANDOS_MODULE_CLIENT_OPTIONS", "$MANDOS_CLIENT_OPTIONS"]


def test_no_dh_params_option_without_the_file(tmp_path: Path) -> None:
    dropin, _ = _systemd_install(tmp_path, dhparams=False)
    assert "MANDOS_MODULE_CLIENT_OPTIONS" not in dropin
