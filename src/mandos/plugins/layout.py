"""Lay the plugins out as executables in a plugins.d directory, as the reference ships them.

Decision: plugins get no console scripts (a ``plymouth`` on PATH would shadow /bin/plymouth).
Each is ``python -m mandos.plugins.NAME``, and :func:`install_plugin_dir` writes small wrapper
scripts named exactly as the reference's plugins (``password-prompt``, ``askpass-fifo``, ...).
The reference makes all but password-prompt setuid root; the kernel ignores setuid on scripts,
so the wrappers keep the mode bits and plugin-runner honours them (see plan.py). Then, as the
initramfs hook does (REFERENCE A16), files in ``/etc/mandos/plugins.d`` override or add plugins
and files in ``/etc/mandos/plugin-helpers`` override or add helpers, with the runner's skip
rules. Both directories get mode 0700.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from mandos.initramfs.plugindir import is_skipped_name

#: Reference name -> (module, setuid root in the reference).
PLUGINS: Final = {
    "password-prompt": ("mandos.plugins.password_prompt", False),
    "askpass-fifo": ("mandos.plugins.askpass_fifo", True),
    "plymouth": ("mandos.plugins.plymouth", True),
    "usplash": ("mandos.plugins.usplash", True),
    "splashy": ("mandos.plugins.splashy", True),
    "mandos-client": ("mandos.client.launch", True),
}
PLUGIN_OVERRIDES: Final = "/etc/mandos/plugins.d"
HELPER_OVERRIDES: Final = "/etc/mandos/plugin-helpers"


def wrapper_text(module: str, python: str = sys.executable) -> str:
    """An executable Python script that runs ``module``'s ``main()``; -I keeps PYTHON* out."""
    return (
        f"#!{python} -I\n"
        f'"""Mandos plugin: runs {module}.main()."""\n'
        "import sys\n"
        f"from {module} import main\n"
        "sys.exit(main())\n"
    )


def overlay(dest: Path, source: Path) -> list[str]:
    """Copy the plugin-like files of ``source`` into ``dest``, replacing same-named ones."""
    copied: list[str] = []
    if not source.is_dir():
        return copied
    for entry in sorted(source.iterdir()):
        if is_skipped_name(entry.name) or not entry.is_file():
            continue
        shutil.copy2(entry, dest / entry.name)
        copied.append(entry.name)
    return copied


def install_plugin_dir(
    dest: str | os.PathLike[str],
    *,
    names: Iterable[str] | None = None,
    python: str = sys.executable,
    override_dir: str | os.PathLike[str] | None = PLUGIN_OVERRIDES,
) -> list[str]:
    """Write the plugin wrappers into ``dest`` (mode 0700), then the overrides; names written.

    A plugin whose module is not importable (``mandos-client`` before it exists) is left out,
    unless an override supplies it.
    """
    target = Path(dest)
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o700)
    written: list[str] = []
    for name in names if names is not None else PLUGINS:
        module, setuid = PLUGINS[name]
        if importlib.util.find_spec(module.rpartition(".")[0]) is None:
            continue
        if importlib.util.find_spec(module) is None:
            continue
        path = target / name
        path.write_text(wrapper_text(module, python))
        path.chmod(0o4755 if setuid else 0o755)
        written.append(name)
    if override_dir is not None:
        for name in overlay(target, Path(override_dir)):
            if name not in written:
                written.append(name)
    return written


def install_helper_dir(
    dest: str | os.PathLike[str], *, override_dir: str | os.PathLike[str] = HELPER_OVERRIDES
) -> list[str]:
    """Create the helper directory (mode 0700) and copy in the admin's helpers."""
    target = Path(dest)
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o700)
    return overlay(target, Path(override_dir))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mandos.plugins.layout PLUGINS_DIR [HELPERS_DIR]``: install both."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 2 or args[0].startswith("-"):
        sys.stderr.write("usage: python -m mandos.plugins.layout PLUGINS_DIR [HELPERS_DIR]\n")
        return 64
    for name in install_plugin_dir(args[0]):
        sys.stdout.write(f"{Path(args[0]) / name}\n")
    if len(args) == 2:
        for name in install_helper_dir(args[1]):
            sys.stdout.write(f"{Path(args[1]) / name}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
