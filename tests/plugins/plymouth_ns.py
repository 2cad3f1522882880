"""Run inside fresh mount, network and PID namespaces: a real headless plymouthd and our plugin.

plymouthd takes its console from /sys/class/tty/console/active (here the VM's serial port), so
we bind-mount a file naming our pseudo-terminal over it; /run is a private tmpfs, the abstract
control socket lives in the private network namespace, and as PID 1 this script's exit ends
every process it started. Prints one JSON line of results.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLUGIN = [sys.executable, "-m", "mandos.plugins.plymouth", "--plymouth=/usr/bin/plymouth"]


def read_until(fd: int, needle: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            seen += os.read(fd, 4096)
    return seen


def plymouthd_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "plymouthd":
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def wait_ping(timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["/usr/bin/plymouth", "--ping"], check=False).returncode == 0:
            return True
        time.sleep(0.1)
    return False


def main() -> None:
    mode = sys.argv[1]
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)
    master, slave = pty.openpty()
    active = Path(tempfile.mkdtemp()) / "active"
    active.write_text(os.ttyname(slave).removeprefix("/dev/") + "\n")
    subprocess.run(["mount", "--bind", str(active), "/sys/class/tty/console/active"], check=True)
    Path("/run/plymouth").mkdir()
    daemon_argv = ["/usr/sbin/plymouthd", "--no-daemon", "--mode=boot",
                   f"--tty={os.ttyname(slave)}", "--pid-file=/run/plymouth/pid"]  # fmt: skip
    subprocess.Popen(daemon_argv, stdin=slave, stdout=subprocess.DEVNULL)
    result: dict[str, object] = {"ping": wait_ping()}
    subprocess.run(["/usr/bin/plymouth", "show-splash"], check=False)
    env = dict(os.environ, CRYPTTAB_SOURCE="/dev/vda2", CRYPTTAB_NAME="root")
    plugin = subprocess.Popen(PLUGIN, stdout=subprocess.PIPE, env=env)
    result["screen"] = read_until(master, b"Enter passphrase").decode(errors="replace")
    old = plymouthd_pids()
    if mode == "answer":
        time.sleep(0.5)
        os.write(master, b"plymouth secret\r")
        out, _ = plugin.communicate(timeout=30)
        result.update(code=plugin.returncode, out=out.decode())
    else:
        plugin.send_signal(signal.SIGTERM)
        plugin.communicate(timeout=30)
        result["code"] = plugin.returncode
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            set(plymouthd_pids()) & set(old) or not plymouthd_pids()
        ):
            time.sleep(0.1)
        new = [p for p in plymouthd_pids() if p not in old]
        result["restarted"] = bool(new)
        if new:
            raw = Path(f"/proc/{new[0]}/cmdline").read_bytes()
            result["new_argv"] = [a.decode() for a in raw.split(b"\0")[:-1]]
        result["ping_after"] = wait_ping()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
