"""integration/initramfs-tools/python-files: the Python an initramfs gets, run from that tree alone.

python-files is run once, as the hooks run it, into a temporary tree; then a fresh interpreter
whose sys.path holds only that tree (its two zip files, os.pyc's directory, the packages with
data files) and the host's lib-dynload imports what every boot path imports, and runs a little.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "integration" / "initramfs-tools" / "python-files"
STDLIB = Path(sysconfig.get_paths()["stdlib"])
SITE = Path(sysconfig.get_paths()["purelib"])
SITE_ZIP = "mandos-py-initramfs.zip"
#: What the boot paths import: client (--connect, race, Zeroconf, threshold), runner, plugins.
BOOT_MODULES = (
    "mandos.client.launch", "mandos.client.main", "mandos.client.race", "mandos.client.session",
    "mandos.client.discovery", "mandos.adapters.openpgp", "mandos.adapters.slip39",
    "mandos.plugin_runner.main", "mandos.plugins.password_prompt", "mandos.plugins.askpass_fifo",
    "mandos.plugins.plymouth", "mandos.plugins.usplash", "mandos.plugins.splashy",
    "mandos.plugins.password_agent", "zeroconf.asyncio", "shamir_mnemonic",
)  # fmt: skip


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The tree python-files writes, and the files it lists for copy_exec."""
    dest = tmp_path_factory.mktemp("python-files")
    out = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), str(dest)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.splitlines()  # fmt: skip
    return dest, out


def _in_tree(dest: Path, path: Path) -> Path:
    return dest / str(path).lstrip("/")


def _members(dest: Path) -> set[str]:
    """Every .pyc in the tree: zip members (by their name in the zip) and files (by path)."""
    names = {str(p.relative_to(dest)) for p in dest.rglob("*.pyc")}
    for z in dest.rglob("*.zip"):
        names |= set(zipfile.ZipFile(z).namelist())
    return names


def _run_from_tree(dest: Path, code: str) -> subprocess.CompletedProcess[str]:
    paths = [
        _in_tree(dest, STDLIB.parent / f"python{sys.version_info[0]}{sys.version_info[1]}.zip"),
        _in_tree(dest, STDLIB), STDLIB / "lib-dynload", _in_tree(dest, SITE),
        _in_tree(dest, SITE / SITE_ZIP),
    ]  # fmt: skip
    probe = f"import sys\nsys.path[:] = {[str(p) for p in paths]!r}\n{code}"
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=60
    )


def test_lists_the_interpreter_and_gnutls_and_no_openssl(tree: tuple[Path, list[str]]) -> None:
    _, out = tree
    assert any(Path(p).name.startswith("python3") for p in out)
    assert any("libgnutls.so" in p for p in out)
    assert not any("_ssl." in p or "_hashlib." in p or "pysequoia" in p for p in out)
    # zeroconf's Cython modules are left out: their .pyc twins run instead.
    assert not any("zeroconf" in p for p in out)


def test_the_tree_holds_pyc_in_zips_and_no_sources(tree: tuple[Path, list[str]]) -> None:
    dest, _ = tree
    assert not list(dest.rglob("*.py"))
    assert _in_tree(dest, STDLIB / "os.pyc").is_file()  # getpath's landmark
    members = _members(dest)
    assert {"asyncio/__init__.pyc", "encodings/utf_8.pyc", "subprocess.pyc"} <= members
    assert {"mandos/initramfs/argp.pyc", "mandos/plugin_runner/main.pyc"} <= members
    assert "zeroconf/_dns.pyc" in members
    pth = _in_tree(dest, SITE / SITE_ZIP).with_suffix(".pth")
    assert pth.read_text() == SITE_ZIP + "\n"


def test_what_no_boot_path_runs_is_left_out(tree: tuple[Path, list[str]]) -> None:
    dest, _ = tree
    members = _members(dest)
    tops = {m.split("/")[0] for m in members}
    server_side = {"server", "ctl", "monitor", "doctor", "keygen", "audit", "luks"}
    assert not {m.split("/")[1] for m in members if m.startswith("mandos/")} & server_side
    assert not {"ssl.pyc", "bz2.pyc", "lzma.pyc", "_strptime.pyc", "datetime.pyc"} & tops
    assert not {"urllib/request.pyc", "logging/handlers.pyc", "importlib/metadata"} & members
    assert "asyncio/windows_events.pyc" not in members
    assert "codecs.pyc" not in tops  # frozen into the interpreter
    assert "_distutils_hack" not in tops


def test_every_boot_module_imports_from_the_tree_alone(tree: tuple[Path, list[str]]) -> None:
    """No module comes from outside the tree; docstrings are gone, asserts are not."""
    dest, _ = tree
    code = (
        "".join(f"import {m}\n" for m in BOOT_MODULES) + "import mandos.client.main as m\n"
        "outside = sorted(n for n, mod in sys.modules.items()\n"
        f"    if getattr(mod, '__file__', None) and not mod.__file__.startswith({str(dest)!r})\n"
        "    and 'lib-dynload' not in mod.__file__ and mod.__spec__.origin != 'frozen'\n"
        "    and not n.startswith('encodings'))\n"  # the interpreter's start, before sys.path
        "print(outside, m.__doc__, m.Keys.__doc__ is None or m.Keys.__doc__.startswith('Keys('))\n"
        "try:\n    m._Stopper().reraise()\nexcept AssertionError:\n    print('asserts kept')\n"
    )
    done = _run_from_tree(dest, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[] None True\nasserts kept\n"


def test_combining_shares_works_from_the_tree(tree: tuple[Path, list[str]]) -> None:
    """shamir_mnemonic (a file tree, for its word list) and core/shares.py combine two shares,
    without _hashlib (left out of the image: no OpenSSL)."""
    dest, _ = tree
    (slip,) = [p for p in dest.rglob("shamir_mnemonic") if p.is_dir()]
    assert (slip / "wordlist.txt").is_file()
    done = _run_from_tree(
        dest,
        "sys.modules['_hashlib'] = None\n"
        "from mandos.core import shares; from mandos.adapters import slip39\n"
        "import shamir_mnemonic\n"
        f"assert shares.__file__.startswith({str(dest)!r}), shares.__file__\n"
        "p = slip39.make_shares(b'pw', 2, 3, bytes(16))\n"
        "group = [shares.parse(p[0]), shares.parse(p[2])]\n"
        "print(shares.combine(group, slip39.recover).reveal().decode())\n",
    )
    assert (done.returncode, done.stdout) == (0, "pw\n"), done.stderr


#: Lazy imports of ours that only a server-side function makes (module, what it imports).
SERVER_SIDE_ONLY = {
    ("mandos.adapters.zeroconf_service", "mandos.core.config"),  # ZeroconfAnnouncer's default
}


def _mandos_imports(source: str) -> set[str]:
    """Every mandos module or name an import statement anywhere in SOURCE names (lazy ones too),
    except under ``if TYPE_CHECKING:``."""
    names: set[str] = set()
    todo: list[ast.AST] = [ast.parse(source)]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            todo += node.orelse
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("mandos")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mandos"):
            names |= {f"{node.module}.{a.name}" for a in node.names} | {str(node.module)}
        todo += ast.iter_child_nodes(node)
    return names


def _source(name: str) -> Path | None:
    """The source file of our module NAME, or None when NAME is not a module."""
    base = REPO / "src" / name.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def test_lazy_imports_of_our_modules_are_in_the_tree(tree: tuple[Path, list[str]]) -> None:
    """Ours are taken by import (rule 1): an import inside a function must find its module too."""
    dest, _ = tree
    names = {m[: -len(".pyc")].replace("/", ".") for m in _members(dest)}
    ours = {m.removesuffix(".__init__") for m in names if m.startswith("mandos")}
    missing = set()
    for module in ours:
        source = _source(module)
        assert source is not None, module
        for name in _mandos_imports(source.read_text()):
            if name not in ours and _source(name) and (module, name) not in SERVER_SIDE_ONLY:
                missing.add(f"{module} imports {name}")
    assert not missing
