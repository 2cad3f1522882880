"""The house rules, enforced by reading the AST of every module under src/mandos.

1. The core is pure: ``mandos.core`` imports only the standard library's pure modules
   (:data:`CORE_STDLIB`) and ``mandos.core``, and calls no clock, no random source and no I/O
   (time is an argument, randomness an injected ``random.Random``, effects are returned).
2. Imports point inward: core <- adapters <- programs. A program package (every package under
   ``mandos`` other than ``core`` and ``adapters``) imports no other program's package, except
   the modules in :data:`SHARED_PROGRAM_MODULES`.
3. The initramfs side (``client``, ``plugin_runner``, ``plugins``) never imports the server,
   D-Bus (``dbus_fast``, ``mandos.adapters.dbus_*``), textual, or zeroconf (which only
   ``mandos.client.discovery`` may import).

Each rule is a function of (module name, source text), so the tests below also feed each one a
planted violation and see it fail. A fresh interpreter also imports every core module and checks
that no I/O library was pulled in indirectly (zeroconf's ``test_circular_imports.py`` habit).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import mandos
import mandos.core

SRC = Path(mandos.__file__).parent
#: The packages under mandos (``from mandos import __version__`` names none of them).
PACKAGES = frozenset(p.parent.name for p in SRC.glob("*/__init__.py"))

#: The standard library modules the core may import: none of them reads a clock, the disk, the
#: network or the environment by being imported. (``random`` is there for the ``random.Random``
#: type of an injected generator; calling its module functions is refused by rule 1.)
CORE_STDLIB = frozenset(
    {
        "__future__",
        "binascii",
        "collections",
        "configparser",
        "contextlib",
        "copy",
        "dataclasses",
        "datetime",
        "enum",
        "functools",
        "hashlib",
        "heapq",
        "ipaddress",  # parses address literals (core/hostport.py)
        "itertools",
        "json",  # canonical records of the audit chain (core/audit_record.py)
        "logging",
        "math",
        "operator",
        "random",
        "re",
        "shlex",
        "string",
        "typing",
    }
)

#: Calls that read a clock: matched on the last name of the callee (``datetime.now()``,
#: ``dt.utcnow()``, ``loop.time()`` all count), plus ``time.*``.
CLOCK_ATTRIBUTES = frozenset(
    {
        "now",
        "utcnow",
        "today",
        "monotonic",
        "monotonic_ns",
        "perf_counter",
        "perf_counter_ns",
        "process_time",
        "time_ns",
    }
)
#: Modules whose every function is a clock, a random source or I/O.
IMPURE_MODULES = frozenset(
    {
        "asyncio",
        "fcntl",
        "glob",
        "io",
        "os",
        "pathlib",
        "random",
        "secrets",
        "select",
        "shutil",
        "signal",
        "socket",
        "subprocess",
        "sys",
        "tempfile",
        "time",
        "uuid",
    }
)
#: Builtins that do I/O.
IMPURE_BUILTINS = frozenset({"open", "print", "input", "breakpoint", "exit", "quit"})
#: ``logging`` functions that emit or configure (the core returns ``Log`` effects instead);
#: its level constants are fine.
IMPURE_LOGGING = frozenset(
    {
        "basicConfig",
        "critical",
        "debug",
        "error",
        "exception",
        "getLogger",
        "info",
        "log",
        "warning",
    }
)

INNER_LAYERS = {"core": 0, "adapters": 1}  # every other package under mandos is a program (2)
INITRAMFS = frozenset({"client", "plugin_runner", "plugins", "initramfs"})
INITRAMFS_FORBIDDEN = ("mandos.server", "dbus_fast", "mandos.adapters.dbus_", "textual", "zeroconf")
ZEROCONF_ALLOWED = frozenset({"mandos.client.discovery"})

#: Modules of one program that other programs may import. Code two programs share goes inward
#: (pure: ``core``; I/O: ``adapters``); a module listed here is the exception, for helpers of
#: the initramfs programs that are neither, and docs/architecture.md names it: the
#: ``mandos.initramfs`` package (standard library only; itself under rule 3); for
#: mandos-luks (issue 12), which makes keys and sections as mandos-keygen does and fetches as
#: mandos-client does, the keygen and client modules it reuses; and mandos-client's own
#: exchange and discovery, which mandos-doctor runs so that it checks what the boot will do.
SHARED_PROGRAM_MODULES: frozenset[str] = frozenset(
    {
        "mandos.initramfs",  # and its modules
        "mandos.keygen.render",
        "mandos.keygen.threshold",
        "mandos.keygen.tools",
        "mandos.client.args",
        "mandos.client.attempt",
        "mandos.client.threshold",
        "mandos.client.discovery",
        "mandos.client.session",
    }
)

#: Known drift being fixed on another branch: (importer package, imported package) pairs.
#: Remove an entry as soon as main no longer has the import; the test fails on a stale entry.
#: None left (issue 11 removed plugin_runner <-> plugins and monitor -> ctl.bus).
KNOWN_CROSS_PROGRAM: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class Import:
    """One imported module name (``from p import m`` gives ``p.m``) at a line."""

    line: int
    name: str


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, str]:
    """Every module under src/mandos: dotted name -> source."""
    return {_module_name(p): p.read_text(encoding="utf-8") for p in sorted(SRC.rglob("*.py"))}


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(module: str, source: str, is_package: bool = False) -> Iterator[Import]:
    """Every module ``source`` imports, anywhere in the file (functions and TYPE_CHECKING too)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (Import(node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node, is_package)
            yield Import(node.lineno, base)
            # ``from pkg import name``: name may be a submodule; rules match on prefixes, so
            # naming it too only makes them stricter.
            yield from (Import(node.lineno, f"{base}.{a.name}") for a in node.names)


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted name it was imported as (``from time import time`` too)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                names[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    head = aliases.get(node.id, node.id)
    return ".".join([head, *reversed(parts)])


def _impure(callee: str) -> str | None:
    """Why calling ``callee`` (a resolved dotted name) is impure, or None."""
    root, _, rest = callee.partition(".")
    last = callee.rsplit(".", 1)[-1]
    if last in CLOCK_ATTRIBUTES or callee == "time.time":
        return "reads a clock"
    if callee in IMPURE_BUILTINS:
        return "does I/O"
    if root == "logging" and rest in IMPURE_LOGGING:
        return "logs (return a Log effect instead)"
    if root in IMPURE_MODULES and rest:
        return "reads a clock, a random source or does I/O"
    return None


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _under(name: str, prefix: str) -> bool:
    return (
        name == prefix
        or name.startswith(prefix + ".")
        or (prefix.endswith("_") and name.startswith(prefix))
    )


# -- the rules: each returns one line per violation ------------------------------------------


def core_import_violations(module: str, source: str) -> list[str]:
    """Rule 1, imports: the core imports only CORE_STDLIB and mandos.core."""
    if _package(module) != "core":
        return []
    bad = []
    for imp in imports_of(module, source, is_package=module == "mandos.core"):
        top = imp.name.split(".")[0]
        if top == "mandos":
            if not _under(imp.name, "mandos.core"):
                bad.append(f"{module}:{imp.line}: the core imports {imp.name}")
        elif top not in CORE_STDLIB:
            bad.append(f"{module}:{imp.line}: the core imports {imp.name} (not pure stdlib)")
    return bad


def core_call_violations(module: str, source: str) -> list[str]:
    """Rule 1, calls: the core calls no clock, random source or I/O."""
    if _package(module) != "core":
        return []
    tree = ast.parse(source)
    aliases = _aliases(tree)
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            callee = _dotted(node.func, aliases)
            why = None if callee is None else _impure(callee)
            if why:
                bad.append(f"{module}:{node.lineno}: the core calls {callee}(): it {why}")
    return bad


def layer_violations(
    module: str, source: str, known: frozenset[tuple[str, str]] = frozenset()
) -> list[str]:
    """Rule 2: imports point inward, and programs do not import each other."""
    package = _package(module)
    layer = INNER_LAYERS.get(package, 2)
    bad = []
    for imp in imports_of(module, source, is_package=module.count(".") == 1):
        parts = imp.name.split(".")
        if parts[0] != "mandos" or len(parts) < 2 or parts[1] not in PACKAGES:
            continue  # a third-party module, or ``mandos`` itself (its __version__)
        target = parts[1]
        if target == package or any(_under(imp.name, m) for m in SHARED_PROGRAM_MODULES):
            continue
        target_layer = INNER_LAYERS.get(target, 2)
        if target_layer > layer:
            bad.append(f"{module}:{imp.line}: imports outward, {imp.name}")
        elif layer == target_layer == 2 and (package, target) not in known:
            bad.append(f"{module}:{imp.line}: program {package} imports program {imp.name}")
    return bad


def initramfs_violations(module: str, source: str) -> list[str]:
    """Rule 3: the initramfs side stays free of the server, D-Bus, textual and zeroconf."""
    if _package(module) not in INITRAMFS:
        return []
    bad = []
    for imp in imports_of(module, source, is_package=module.count(".") == 1):
        for prefix in INITRAMFS_FORBIDDEN:
            if prefix == "zeroconf" and module in ZEROCONF_ALLOWED:
                continue
            if _under(imp.name, prefix):
                bad.append(f"{module}:{imp.line}: the initramfs side imports {imp.name}")
    return bad


def _first_per_line(lines: list[str]) -> list[str]:
    """One message per source line (``from p import a, b`` names p, p.a and p.b)."""
    seen: dict[str, str] = {}
    for line in lines:
        seen.setdefault(line.split(": ", 1)[0], line)
    return list(seen.values())


def all_violations(modules: dict[str, str]) -> list[str]:
    """Every rule over every module (known cross-program imports allowed)."""
    bad = []
    for module, source in modules.items():
        bad += _first_per_line(core_import_violations(module, source))
        bad += core_call_violations(module, source)
        bad += _first_per_line(layer_violations(module, source, KNOWN_CROSS_PROGRAM))
        bad += _first_per_line(initramfs_violations(module, source))
    return sorted(set(bad))


# -- the tree as it is -----------------------------------------------------------------------


def test_walks_every_package() -> None:
    packages = {_package(m) for m in all_modules()}
    assert {"core", "adapters", "server", "client", "plugin_runner", "plugins"} <= packages
    assert "mandos.core.registry" in all_modules()


def test_the_tree_keeps_every_rule() -> None:
    assert all_violations(all_modules()) == []


def test_known_cross_program_imports_still_exist() -> None:
    """An entry of KNOWN_CROSS_PROGRAM whose import is gone must be removed."""
    seen = set()
    for module, source in all_modules().items():
        for line in layer_violations(module, source):
            if "imports program" in line:
                seen.add((_package(module), line.rsplit(" ", 1)[1].split(".")[1]))
    assert seen >= KNOWN_CROSS_PROGRAM, f"stale entries: {KNOWN_CROSS_PROGRAM - seen}"


def test_core_imports_no_io_library_at_run_time() -> None:
    """Indirect imports count too: a fresh interpreter imports the whole core."""
    core = [m for m in all_modules() if _package(m) == "core"]
    forbidden = {"asyncio", "socket", "ctypes", "subprocess", "dbus_fast", "zeroconf", "textual"}
    imports = "; ".join(f"import {m}" for m in core)
    probe = f"import sys; {imports}; print(sorted(set({sorted(forbidden)!r}) & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]", f"the pure core imported {out}"


def pragma_violations(module: str, source: str) -> list[str]:
    """Coverage of the core is enforced at 100%: ``no cover`` only on ``case _: assert_never``."""
    if _package(module) != "core":
        return []
    lines = source.splitlines()
    return [
        f"{module}:{n}: no cover outside an exhaustive match's assert_never arm"
        for n, line in enumerate(lines, start=1)
        if "pragma: no cover" in line
        and not (
            line.strip().startswith("case _:") and n < len(lines) and "assert_never(" in lines[n]
        )
    ]


def test_core_excludes_from_coverage_only_assert_never_arms() -> None:
    bad = [line for m, s in all_modules().items() for line in pragma_violations(m, s)]
    assert bad == []
    planted = "def f(x):\n    if x:  # pragma: no cover\n        return 1\n"
    assert pragma_violations("mandos.core.x", planted) != []
    arm = "match x:\n    case _:  # pragma: no cover\n        assert_never(x)\n"
    assert pragma_violations("mandos.core.x", arm) == []


# -- each rule fails on a planted violation ----------------------------------------------------

PLANTED: list[tuple[str, str, str]] = [
    # (module, source, a word of the expected message)
    ("mandos.core.x", "import socket", "not pure stdlib"),
    ("mandos.core.x", "import os.path", "not pure stdlib"),
    ("mandos.core.x", "from mandos.adapters import statefile", "imports mandos.adapters"),
    ("mandos.core.x", "def f():\n    from mandos.server import app", "imports mandos.server"),
    ("mandos.core.x", "from ..adapters import listener", "imports mandos.adapters"),
    ("mandos.core.x", "import time\nt = time.time()", "reads a clock"),
    ("mandos.core.x", "from time import monotonic\nt = monotonic()", "reads a clock"),
    ("mandos.core.x", "from datetime import datetime\nn = datetime.now()", "reads a clock"),
    ("mandos.core.x", "import datetime as d\nn = d.datetime.utcnow()", "reads a clock"),
    ("mandos.core.x", "import random\nr = random.random()", "random source"),
    ("mandos.core.x", "import random\nr = random.Random()", "random source"),
    ("mandos.core.x", "from random import randint\nr = randint(0, 1)", "random source"),
    ("mandos.core.x", "import os\nb = os.urandom(8)", "random source"),
    ("mandos.core.x", "import secrets\nb = secrets.token_bytes(8)", "random source"),
    ("mandos.core.x", "f = open('/etc/passwd')", "does I/O"),
    ("mandos.core.x", "print('hello')", "does I/O"),
    ("mandos.core.x", "x = input()", "does I/O"),
    ("mandos.core.x", "import os\nos.unlink('f')", "does I/O"),
    ("mandos.core.x", "from os import listdir\nlistdir('.')", "does I/O"),
    ("mandos.core.x", "import subprocess\nsubprocess.run(['true'])", "does I/O"),
    ("mandos.core.x", "from pathlib import Path\nPath('f').read_text()", "does I/O"),
    ("mandos.core.x", "import logging\nlogging.getLogger(__name__).info('x')", "logs"),
    ("mandos.adapters.x", "from mandos.server import app", "imports outward"),
    ("mandos.adapters.x", "from mandos.ctl.bus import Bus", "imports outward"),
    ("mandos.server.x", "from mandos.client import args", "imports program"),
    ("mandos.monitor.x", "import mandos.keygen.main", "imports program"),
    ("mandos.monitor.x", "from mandos.keygen import render", "imports program"),
    ("mandos.newprog.main", "from mandos.server.args import PROG", "imports program"),
    ("mandos.client.x", "from mandos.server import connection", "initramfs side"),
    ("mandos.client.x", "import dbus_fast", "initramfs side"),
    ("mandos.plugins.x", "from dbus_fast.aio import MessageBus", "initramfs side"),
    ("mandos.plugin_runner.x", "from mandos.adapters import dbus_api", "initramfs side"),
    ("mandos.plugin_runner.x", "import mandos.adapters.dbus_service", "initramfs side"),
    ("mandos.plugins.x", "import textual.app", "initramfs side"),
    ("mandos.client.network", "import zeroconf", "initramfs side"),
    ("mandos.client.x", "def f():\n    from zeroconf.asyncio import AsyncZeroconf", "initramfs"),
    ("mandos.initramfs.x", "from mandos.adapters import dbus_client", "initramfs side"),
    ("mandos.plugins.x", "from mandos.plugin_runner.plan import OPTIONS", "imports program"),
    ("mandos.monitor.x", "from mandos.ctl import render", "imports program"),
]


@pytest.mark.parametrize(("module", "source", "message"), PLANTED)
def test_each_rule_fails_on_a_planted_violation(module: str, source: str, message: str) -> None:
    found = all_violations({module: source})
    assert found, f"no rule caught {source!r} in {module}"
    assert any(message in line for line in found), found


ALLOWED: list[tuple[str, str]] = [
    ("mandos.core.x", "import dataclasses\nfrom mandos.core.values import Secret"),
    (
        "mandos.core.x",
        "import random\ndef f(rng: random.Random) -> int:\n    return rng.randint(0, 1)",
    ),
    ("mandos.core.x", "import logging\nLEVEL = logging.INFO"),
    ("mandos.core.x", "from datetime import UTC, datetime\nd = datetime(2024, 1, 1, tzinfo=UTC)"),
    ("mandos.core.x", "from . import values"),
    ("mandos.adapters.x", "from mandos.core.errors import TLSError\nimport asyncio"),
    ("mandos.server.x", "from mandos import __version__\nfrom mandos.adapters import dbus_api"),
    ("mandos.server.x", "from mandos.server.args import PROG\nimport dbus_fast"),
    ("mandos.client.discovery", "from zeroconf.asyncio import AsyncZeroconf"),
    ("mandos.client.x", "from mandos.adapters.gnutls import session"),
    ("mandos.plugins.x", "from mandos.initramfs import argp"),
    ("mandos.client.x", "from mandos.initramfs.process import write_all"),
    ("mandos.monitor.x", "from mandos.adapters.dbus_client import MandosBus"),
]


@pytest.mark.parametrize(("module", "source"), ALLOWED)
def test_rules_allow_what_the_house_does(module: str, source: str) -> None:
    assert all_violations({module: source}) == []


def test_known_cross_program_entry_allows_only_its_pair() -> None:
    known = frozenset({("monitor", "ctl")})
    source = "from mandos.ctl.bus import Bus"
    assert layer_violations("mandos.monitor.app", source, known) == []
    assert layer_violations("mandos.monitor.app", source) != []
    assert layer_violations("mandos.keygen.x", source, known) != []
