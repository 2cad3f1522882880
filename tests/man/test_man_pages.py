"""The man pages: generated from docs/man by pandoc, clean under groff and man, found by name."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from mandos.plugins.layout import PLUGINS

REPO = Path(__file__).resolve().parents[2]
INSTALL_MAN = REPO / "integration" / "install-man"
UNIT = REPO / "integration" / "systemd" / "mandos.service"
# man(1) formats for an 80-column terminal in the C.UTF-8 locale, whatever the test's terminal.
ENV = {**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8", "MAN_KEEP_STDERR": "1"}
SERVER_PAGES = {
    "mandos.8", "mandos-ctl.8", "mandos-monitor.8", "mandos-keygen.8", "mandos-audit.8",
    "mandos.conf.5", "mandos-clients.conf.5",
}  # fmt: skip


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=ENV, **kw)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="module")
def mandir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every page, installed as integration/install installs them."""
    out = tmp_path_factory.mktemp("man")
    run(["bash", str(INSTALL_MAN), str(out)], check=True)
    return out


def pages(mandir: Path) -> dict[str, Path]:
    return {p.name.removesuffix(".gz"): p for p in mandir.glob("man*/*.gz")}


def test_every_program_has_a_page(mandir: Path) -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    names = {page.rsplit(".", 1)[0] for page in pages(mandir)}
    assert set(scripts) | set(PLUGINS) <= names
    # The reference's layout: the server's pages in 5 and 8, the client side in 8mandos.
    assert set(pages(mandir)) >= SERVER_PAGES
    assert {f"{name}.8mandos" for name in PLUGINS} | {"plugin-runner.8mandos"} <= set(pages(mandir))
    assert all(p.parent.name == f"man{p.name.split('.')[-2][0]}" for p in pages(mandir).values())


def test_groff_and_man_are_silent(mandir: Path) -> None:
    for name, path in sorted(pages(mandir).items()):
        roff = gzip.decompress(path.read_bytes()).decode()
        groff = run(["groff", "-ww", "-z", "-t", "-man"], input=roff)
        assert (groff.returncode, groff.stderr) == (0, ""), name
        man = run(["man", "--warnings", "-l", str(path)])
        assert (man.returncode, man.stderr) == (0, ""), name
        assert "NAME" in man.stdout
        assert "SEE ALSO" in man.stdout or "EXIT STATUS" in man.stdout, name


def test_lexgrog_finds_each_name_line(mandir: Path) -> None:
    for name, path in sorted(pages(mandir).items()):
        out = run(["lexgrog", str(path)])
        assert out.returncode == 0, (name, out.stdout, out.stderr)
        program = name.rsplit(".", 1)[0]
        assert re.search(rf': "{re.escape(program)} - \S', out.stdout), out.stdout


def test_the_units_documentation_resolves(mandir: Path) -> None:
    docs = [
        line.removeprefix("Documentation=").split()
        for line in UNIT.read_text().splitlines()
        if line.startswith("Documentation=")
    ]
    refs = [ref for line in docs for ref in line if ref.startswith("man:")]
    assert refs
    for ref in refs:
        m = re.fullmatch(r"man:([\w.-]+)\((\w+)\)", ref)
        assert m, ref
        found = run(["man", "-M", str(mandir), "-w", m[2], m[1]])
        assert found.returncode == 0, (ref, found.stderr)
        rendered = run(["man", "-M", str(mandir), m[2], m[1]])
        assert m[1] in rendered.stdout


def test_install_parts(tmp_path: Path) -> None:
    """--client gives the client's pages, mandos-keygen(8) and mandos-luks(8); --server the rest."""
    run(["bash", str(INSTALL_MAN), "--client", str(tmp_path / "c")], check=True)
    run(["bash", str(INSTALL_MAN), "--server", str(tmp_path / "s")], check=True)
    client = set(pages(tmp_path / "c"))
    server = set(pages(tmp_path / "s"))
    assert server == SERVER_PAGES
    assert client & server == {"mandos-keygen.8"}
    assert "mandos-luks.8" in client
    assert all(p.endswith(".8mandos") for p in client - {"mandos-keygen.8", "mandos-luks.8"})


def test_bad_usage_is_one_line() -> None:
    out = run(["bash", str(INSTALL_MAN), "--frobnicate"])
    assert out.returncode == 64
    assert out.stderr.count("\n") == 1
