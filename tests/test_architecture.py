"""The core stays pure: importing it must not pull in any I/O library."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import mandos.core

FORBIDDEN = {"asyncio", "socket", "ctypes", "subprocess", "dbus_fast", "zeroconf"}


def _core_modules() -> list[str]:
    return [f"mandos.core.{info.name}" for info in pkgutil.iter_modules(mandos.core.__path__)]


def test_core_has_modules() -> None:
    assert "mandos.core.errors" in _core_modules()


def test_core_imports_no_io_library() -> None:
    imports = "; ".join(f"import {m}" for m in _core_modules())
    probe = f"import sys; {imports}; print(sorted(set({sorted(FORBIDDEN)!r}) & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]", f"the pure core imported {out}"
