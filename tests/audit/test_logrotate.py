"""The shipped logrotate file (integration/logrotate), run by the real logrotate against our
running server: after two rotations the three files verify as one chain."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from mandos.audit.main import main as audit_main
from tests.audit.test_server_audit import key, records, wait_for_event
from tests.server.conftest import client_section, fetch
from tests.server.ourserver import our_server

SHIPPED = Path(__file__).parents[2] / "integration" / "logrotate"
SECRET = b"\x85 rotated secret"


def rotate(conf: Path, state: Path) -> None:
    done = subprocess.run(
        ["logrotate", "-f", "-s", str(state), str(conf)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_two_rotations_keep_one_chain(tmp_path: Path) -> None:
    assert shutil.which("logrotate"), "logrotate missing: run scripts/install-deps"
    audit = tmp_path / "audit.jsonl"
    alpha = key()
    with our_server(
        client_section("alpha", alpha, SECRET), extra_args=[f"--audit-log={audit}"]
    ) as server:
        pidfile = tmp_path / "mandos.pid"
        pidfile.write_text(f"{server.process.pid}\n")
        user = pwd.getpwuid(os.getuid()).pw_name
        text = (
            SHIPPED.read_text()
            .replace("/var/lib/mandos/audit.jsonl", str(audit))
            .replace("/run/mandos.pid", str(pidfile))
            .replace("/run/systemd/system", str(tmp_path / "no-systemd"))
            .replace("_mandos _mandos", f"{user} {user}")
        )
        assert text.count(str(tmp_path)) == 4, "the shipped file changed: update this test"
        conf = tmp_path / "logrotate.conf"
        conf.write_text(text)
        conf.chmod(0o644)
        for _ in range(2):
            assert fetch(server.host, server.port, alpha) == SECRET
            wait_for_event(audit, "secret_sent")
            rotate(conf, tmp_path / "state")
            wait_for_event(audit, "clients_reloaded")  # SIGHUP arrived; the new file started
            assert [r["event"] for r in records(audit)[:2]] == ["log_opened", "clients_reloaded"]
    files = [tmp_path / "audit.jsonl.2.gz", tmp_path / "audit.jsonl.1", audit]
    assert all(f.exists() for f in files)
    assert audit.stat().st_mode & 0o777 == 0o600
    assert audit_main(["verify", *map(str, files)]) == 0
    assert audit_main(["verify", str(files[0]), str(audit)]) == 1  # a file left out is seen
