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
