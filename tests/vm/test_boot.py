"""A real VM unlocks its LUKS2 root with the password from our server (issue 7).

One initramfs (Debian's mkinitramfs with our hook, in a cached bookworm chroot) and one disk
serve every scenario; each boot attaches the disk with snapshot=on. The guest reaches our
server on the host's 127.0.0.1 only through a restrict=on guestfwd. Timings are printed
(``-s``), never asserted.

Each scenario is a job (tests/vm/jobs.py): a function that boots its guest and asserts what it
shows, run in a worker process beside the other modules' guests; its test reads the outcome.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.netns import netns_available, requires_netns
from tests.ports import free_port
from tests.server.ourserver import RunningServer, our_server
from tests.vm import build, jobs, qemu

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(1500)]

#: cryptsetup's askpass prompt, shown when no password came (cryptsetup-initramfs).
PROMPT = "Please unlock disk cryptroot"
#: A boot under TCG on a loaded 2-core machine, several guests at once: generous (a passing
#: test never waits it out; 200 s was reached with the load average at 7).
BOOT_TIMEOUT = 400.0
#: No mandos= option: the client finds the server with Zeroconf. DAD stays on in the guest, as
#: on a real machine: the client waits for eth0's link-local address to leave the tentative
#: state before it opens Zeroconf (which binds to that address).
ZEROCONF_CMDLINE = "net.ifnames=0"


def _missing_tools() -> list[str]:
    tools = ("qemu-system-x86_64", "mmdebstrap", "busybox", "cryptsetup", "mkfs.ext4", "timeout")
    return [t for t in tools if shutil.which(t) is None]


@dataclass(frozen=True)
class VmSetup:
    """Everything built once per session."""

    files: qemu.BootFiles
    keys: build.ClientKeys
    builder: str


def make_vm_setup(work: Path) -> VmSetup:
    """Kernel, chroot, keys and disk from the cache; the initramfs built afresh (in ``work``).

    The job ``image:bookworm`` (tests/vm/jobs.py), beside the other images.
    """
    missing = _missing_tools()
    if missing:
        pytest.skip(f"VM test needs {', '.join(missing)} (scripts/install-deps)")
    t0 = time.monotonic()
    kernel = build.ensure_kernel()
    keys = build.ensure_keys()
    disk = build.ensure_disk(keys)
    root = build.ensure_chroot(kernel)
    t1 = time.monotonic()
    initrd = build.build_initramfs(root, kernel, keys, work / "initrd.img")
    print(
        f"\nvm: cached parts ready in {t1 - t0:.1f} s; initramfs by {initrd.builder} in "
        f"{initrd.seconds:.1f} s, {initrd.path.stat().st_size / 1e6:.1f} MB"
    )
    return VmSetup(qemu.BootFiles(kernel.vmlinux, initrd.path, disk), keys, initrd.builder)


def clients_conf(keys: build.ClientKeys, **options: str) -> str:
    """The server's clients.conf: the section mandos-keygen printed, a no-op checker."""
    extra = {"checker": "true", **options}
    return keys.section + "".join(f"{k} = {v}\n" for k, v in extra.items())


def boot_disabled(work: Path, setup: VmSetup) -> str:
    """Job of scenario (2): a guest whose client the server refuses."""
    with (
        our_server(clients_conf(setup.keys, enabled="False")) as server,
        qemu.boot(setup.files, qemu.connect_cmdline(), qemu.user_netdev(server.port),
                  work / "console") as guest,
    ):  # fmt: skip
        prompt = guest.wait_for(PROMPT, BOOT_TIMEOUT)
        # The client asks and is refused, at least twice (it keeps retrying).
        deadline = time.monotonic() + BOOT_TIMEOUT
        while server.log_text().count("disabled") < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        refusals = server.log_text().count("disabled")
        assert refusals >= 2, server.log_text()
        text = guest.text()
        assert "set up successfully" not in text
        assert build.ROOT_MARKER not in text
        assert "Sending secret" not in server.log_text()
    return f"vm(2): prompt at {prompt:.1f} s, {refusals} refusals logged; VM stopped"


def test_disabled_client_leaves_the_root_locked(vm_jobs: jobs.Scheduler) -> None:
    """(2) The client is disabled on the server: no password, the guest shows the prompt."""
    print(f"\n{vm_jobs.result('boot:disabled')}")


def boot_to_the_root(
    files: qemu.BootFiles, keys: build.ClientKeys, console: Path
) -> tuple[float, float, str]:
    """A guest whose client our server knows and has enabled, booted through its unlocked root:
    when cryptroot opened and the root's marker appeared (seconds), and the console's text."""
    with (
        our_server(clients_conf(keys)) as server,
        qemu.boot(files, qemu.connect_cmdline(), qemu.user_netdev(server.port), console) as guest,
    ):
        unlocked = guest.wait_for("cryptroot: set up successfully", BOOT_TIMEOUT)
        marker = guest.wait_for(build.ROOT_MARKER, BOOT_TIMEOUT)
        assert "Sending secret to" in server.log_text()
        text = guest.text()
        guest.wait_exit(60)
    return unlocked, marker, text


def boot_enabled(work: Path, setup: VmSetup) -> str:
    """Job of scenario (1): a guest whose client the server knows and has enabled."""
    unlocked, marker, _ = boot_to_the_root(setup.files, setup.keys, work / "console")
    return f"vm(1): unlocked at {unlocked:.1f} s, root marker at {marker:.1f} s"


def test_enabled_client_unlocks_the_root(vm_jobs: jobs.Scheduler) -> None:
    """(1) The server sends the password: cryptroot opens, switch_root, the root's marker."""
    print(f"\n{vm_jobs.result('boot:enabled')}")


def boot_late_server(work: Path, setup: VmSetup) -> str:
    """Job of scenario (3): the guest boots with no server on its port; one starts later."""
    port = free_port()
    with qemu.boot(
        setup.files, qemu.connect_cmdline(), qemu.user_netdev(port), work / "console"
    ) as guest:
        prompt = guest.wait_for(PROMPT, BOOT_TIMEOUT)
        # Let it fail at least twice: sleep what is left of that since the prompt.
        since = time.monotonic() - guest.started - prompt
        time.sleep(max(0.0, 2 * float(build.CLIENT_RETRY) + 1 - since))
        assert "set up successfully" not in guest.text()
        started = time.monotonic() - guest.started
        with our_server(clients_conf(setup.keys), extra_args=[f"--port={port}"]) as server:
            marker = guest.wait_for(build.ROOT_MARKER, BOOT_TIMEOUT)
            assert "Sending secret to" in server.log_text()
        guest.wait_exit(60)
    return (
        f"vm(3): prompt at {prompt:.1f} s, server started at {started:.1f} s, "
        f"root marker at {marker:.1f} s"
    )


def test_client_retries_until_the_server_appears(vm_jobs: jobs.Scheduler) -> None:
    """(3) The server starts after the guest: the client retries, then unlocks."""
    print(f"\n{vm_jobs.result('boot:late')}")


@contextlib.contextmanager
def tap_namespace() -> Iterator[str]:
    """A private namespace holding tap0 (fe80::1, no DAD); deleted with all it runs."""
    ns = f"mvm-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        for argv in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "tuntap", "add", "dev", "tap0", "mode", "tap"],
            ["sysctl", "-q", "-w", "net.ipv6.conf.tap0.accept_dad=0"],
            ["ip", "link", "set", "dev", "tap0", "addrgenmode", "none"],
            ["ip", "-6", "addr", "add", "fe80::1/64", "dev", "tap0", "nodad"],
            ["ip", "link", "set", "dev", "tap0", "multicast", "on", "up"],
        ):
            subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, timeout=30)
        yield ns
    finally:
        pids = subprocess.run(
            ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30, check=False
        ).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "delete", ns], check=False, timeout=30)


@contextlib.contextmanager
def server_in_namespace(ns: str, conf: str, tmp: Path) -> Iterator[RunningServer]:
    """Our server inside ``ns``, announcing itself with Zeroconf on tap0 only."""
    configdir, statedir = tmp / "conf", tmp / "state"
    configdir.mkdir()
    statedir.mkdir()
    (configdir / "clients.conf").write_text(conf)
    (configdir / "mandos.conf").write_text("[DEFAULT]\n")
    logfile = tmp / "server.log"
    port = free_port()
    argv = [
        "ip", "netns", "exec", ns, sys.executable, "-m", "mandos.server",
        "--foreground", "--debug", "--no-dbus", "--interface=tap0", f"--port={port}",
        f"--configdir={configdir}", f"--statedir={statedir}",
    ]  # fmt: skip
    with logfile.open("wb") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1")
        )
    server = RunningServer(process, "fe80::1", port, configdir, statedir, logfile)
    try:
        server.wait_for_log("Listening on port", timeout=60)
        yield server
    finally:
        server.stop()


def boot_zeroconf(work: Path, setup: VmSetup) -> str:
    """Job of scenario (4): the guest on a tap in a private namespace, the server in it."""
    if not netns_available():
        pytest.skip("needs root and iproute2 to create network namespaces")
    with (
        tap_namespace() as ns,
        qemu.boot(
            setup.files, ZEROCONF_CMDLINE, qemu.tap_netdev("tap0"), work / "console",
            prefix=["ip", "netns", "exec", ns],
        ) as guest,
    ):  # fmt: skip
        carrier = Path("/sys/class/net/tap0/carrier")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = subprocess.run(
                ["ip", "netns", "exec", ns, "cat", str(carrier)],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            if done.stdout.strip() == "1":
                break
            time.sleep(0.2)
        with server_in_namespace(ns, clients_conf(setup.keys), work) as server:
            marker = guest.wait_for(build.ROOT_MARKER, BOOT_TIMEOUT)
            log = server.log_text()
            # tap0 has fe80::1 and nothing else: the guest reached it over IPv6 link-local.
            assert "Sending secret to" in log
            assert "announced" in log
        guest.wait_exit(60)
    return f"vm(4): Zeroconf over IPv6 link-local, root marker at {marker:.1f} s"


@requires_netns
def test_zeroconf_over_ipv6_link_local(vm_jobs: jobs.Scheduler) -> None:
    """(4) A tap in a private namespace: the client finds the server by Zeroconf (IPv6 LL)."""
    print(f"\n{vm_jobs.result('boot:zeroconf')}")
