"""Network interfaces and network hooks for mandos-client (REFERENCE A11, A12).

Rules of this module:
1. Interface choice is pure (``choose_interfaces``): names and flags in, names out. Automatic
   choice rejects loopback and NOARP interfaces, and also point-to-point and non-broadcast ones
   unless --connect is given (mandos-client(8mandos), DESCRIPTION).
2. Interfaces are brought up and down with SIOCGIFFLAGS/SIOCSIFFLAGS (netdevice(7)) through
   ``fcntl.ioctl``: no ``ip`` binary is needed in the initramfs, and no process is started.
   Only interfaces this program brought up are taken down again.
3. Hooks: regular executable files whose names match ``[A-Za-z0-9_.-]+``, run in sorted order
   with stdin from /dev/null and stdout sent to stderr; a failing hook is only a warning.
"""

from __future__ import annotations

import _socket  # socket's C core: the socket module imports enum and selectors (RSS)
import fcntl
import os
import struct
import time

from mandos.adapters import lazylog

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import TracebackType
    from typing import Final

    from mandos.client.args import ClientOptions

log = lazylog.get("mandos.client")

SYS_CLASS_NET: Final = "/sys/class/net"  # paths are str: pathlib costs ~0.6 MiB of RSS
PRINTK: Final = "/proc/sys/kernel/printk"
# <linux/if.h>
IFF_UP: Final = 0x1
IFF_BROADCAST: Final = 0x2
IFF_LOOPBACK: Final = 0x8
IFF_POINTOPOINT: Final = 0x10
IFF_RUNNING: Final = 0x40
IFF_NOARP: Final = 0x80
# <linux/sockios.h>
SIOCGIFFLAGS: Final = 0x8913
SIOCSIFFLAGS: Final = 0x8914
_IFREQ: Final = struct.Struct("16sH22x")  # struct ifreq: name, then ifr_flags (a short)
#: While interfaces come up, the console log level is lowered to this (KERN_NOTICE).
QUIET_CONSOLE_LEVEL: Final = 5
POLL_INTERVAL: Final = 0.25
PROC_IF_INET6: Final = "/proc/net/if_inet6"
# <linux/if_addr.h>; scope 0x20 is link-local in /proc/net/if_inet6
IFA_F_DADFAILED: Final = 0x08
IFA_F_TENTATIVE: Final = 0x40
_SCOPE_LINK: Final = 0x20
#: What a hook's name may hold (not a regular expression: re is ~0.3 MiB of the client's RSS).
HOOK_NAME_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
)


def suitable(flags: int, *, connect: bool) -> bool:
    """Whether an interface with these flags may be chosen automatically."""
    if flags & (IFF_LOOPBACK | IFF_NOARP):
        return False
    return connect or (bool(flags & IFF_BROADCAST) and not flags & IFF_POINTOPOINT)


def choose_interfaces(
    opts: ClientOptions, available: Mapping[str, int]
) -> tuple[list[str], list[str], list[str]]:
    """(interfaces to use, those of them that may be brought up, named ones that do not exist)."""
    if opts.auto_interfaces:
        use = [
            n for n, f in sorted(available.items()) if suitable(f, connect=opts.connect is not None)
        ]
        return use, (use if opts.auto_bring_up else []), []
    missing = [n for n in opts.interfaces if n not in available]
    use = [n for n in dict.fromkeys(opts.interfaces) if n in available]
    return use, [n for n in use if n in opts.bring_up], missing


def read_text(path: str) -> str:
    """The whole text file at ``path``."""
    with open(path, encoding="utf-8") as f:
        return f.read()


def sysfs_interfaces(root: str = SYS_CLASS_NET) -> dict[str, int]:
    """Every interface in /sys/class/net with its flags."""
    found: dict[str, int] = {}
    try:
        names = os.listdir(root)
    except OSError:
        return found
    for name in names:
        try:
            found[name] = int(read_text(os.path.join(root, name, "flags")).strip(), 16)
        except (OSError, ValueError):
            continue
    return found


def get_flags(sock: _socket.socket, name: str) -> int:
    """The interface's flags as SIOCGIFFLAGS reports them (IFF_RUNNING included)."""
    raw = fcntl.ioctl(sock, SIOCGIFFLAGS, _IFREQ.pack(name.encode(), 0))
    return int(_IFREQ.unpack(raw)[1])


def set_flags(sock: _socket.socket, name: str, flags: int) -> None:
    """Set the interface's flags (needs CAP_NET_ADMIN)."""
    fcntl.ioctl(sock, SIOCSIFFLAGS, _IFREQ.pack(name.encode(), flags & 0xFFFF))


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class _QuietConsole:  # not contextlib: it imports functools and collections (RSS)
    """Lower the console log level while interfaces come up (best effort, root only)."""

    def __enter__(self) -> None:
        try:
            old = read_text(PRINTK).split()
            self._old = old[0] if int(old[0]) > QUIET_CONSOLE_LEVEL else ""
        except (OSError, ValueError, IndexError):
            self._old = ""
        if self._old:
            try:
                _write_text(PRINTK, f"{QUIET_CONSOLE_LEVEL}\n")
            except OSError:
                self._old = ""

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._old:
            try:  # noqa: SIM105 - contextlib imports functools and collections (RSS)
                _write_text(PRINTK, f"{self._old}\n")
            except OSError:
                pass


def _ioctl_socket() -> _socket.socket:
    """A socket for the interface ioctls (SIOCGIFFLAGS, SIOCSIFFLAGS); the caller closes it."""
    return _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)


def bring_up(names: Sequence[str], delay: float, brought_up: list[str]) -> None:
    """Bring up the interfaces that are down, appending each to ``brought_up`` at once, then
    wait up to ``delay`` seconds for them to be running."""
    if not names:
        return
    sock = _ioctl_socket()
    try:
        _bring_up(sock, names, delay, brought_up)
    finally:
        sock.close()


def _bring_up(
    sock: _socket.socket, names: Sequence[str], delay: float, brought_up: list[str]
) -> None:
    with _QuietConsole():
        for name in names:
            try:
                flags = get_flags(sock, name)
                if flags & IFF_UP:
                    log.debug("Interface %s is already up", name)
                    continue
                log.debug("Bringing up interface %s", name)
                set_flags(sock, name, flags | IFF_UP)
                brought_up.append(name)
            except OSError as exc:
                log.warning("Could not bring up interface %s: %s", name, exc.strerror or exc)
        deadline = time.monotonic() + delay
        for name in brought_up:
            while not _running(sock, name) and time.monotonic() < deadline:
                time.sleep(POLL_INTERVAL)
            if not _running(sock, name):
                log.debug("Interface %s is not running after %g seconds", name, delay)


def usable_link_local(if_inet6: str) -> set[str]:
    """Interfaces with an IPv6 link-local address past duplicate-address detection.

    ``if_inet6`` is the text of /proc/net/if_inet6: address, index, prefix length, scope and
    flags in hex, then the interface name.
    """
    names = set()
    for line in if_inet6.splitlines():
        fields = line.split()
        if len(fields) != 6:
            continue
        try:
            scope, flags = int(fields[3], 16), int(fields[4], 16)
        except ValueError:
            continue
        if scope == _SCOPE_LINK and not flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
            names.add(fields[5])
    return names


def wait_for_link_local(names: Sequence[str], delay: float) -> None:
    """Wait up to ``delay`` seconds until each interface has a usable IPv6 link-local address.

    Zeroconf binds its sockets to that address: opened while the address is still tentative
    (duplicate-address detection takes about a second after the link comes up), the bind fails
    and the interface is left out of the browse for good.
    """
    deadline = time.monotonic() + delay
    waiting = set(names)
    while waiting:
        try:
            waiting -= usable_link_local(read_text(PROC_IF_INET6))
        except OSError:
            return  # no IPv6 in this kernel: nothing to wait for
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(POLL_INTERVAL / 5)
    for name in sorted(waiting):
        log.debug("Interface %s has no usable IPv6 link-local address yet", name)


def _running(sock: _socket.socket, name: str) -> bool:
    try:
        return bool(get_flags(sock, name) & IFF_RUNNING)
    except OSError:
        return False


def take_down(names: Sequence[str]) -> None:
    """Take down the interfaces this program brought up."""
    if not names:
        log.debug("No interfaces needed to be taken down")
        return
    sock = _ioctl_socket()
    try:
        for name in names:
            try:
                set_flags(sock, name, get_flags(sock, name) & ~IFF_UP)
                log.debug("Took down interface %s", name)
            except OSError as exc:
                log.warning("Could not take down interface %s: %s", name, exc.strerror or exc)
    finally:
        sock.close()


def find_hooks(hook_dir: str) -> list[str]:
    """The paths of the runnable hooks in ``hook_dir``, in sorted order; a missing directory
    has none."""
    try:
        names = sorted(os.listdir(hook_dir))
    except OSError as exc:
        log.debug("No network hooks in %s: %s", hook_dir, exc.strerror or exc)
        return []
    hooks: list[str] = []
    for name in names:
        path = os.path.join(hook_dir, name)
        if not name or not set(name) <= HOOK_NAME_CHARS:
            log.debug("Ignoring hook %r: bad name", name)
        elif not os.path.isfile(path):
            log.debug("Ignoring hook %r: not a file", name)
        elif not os.access(path, os.X_OK):
            log.debug("Ignoring hook %r: not executable", name)
        else:
            hooks.append(path)
    return hooks


def hook_environment(mode: str, opts: ClientOptions, base: Mapping[str, str]) -> dict[str, str]:
    """The environment a hook runs in (REFERENCE A12)."""
    env = dict(base)
    env.update(
        MANDOSNETHOOKDIR=opts.network_hook_dir,
        DEVICE=opts.device,
        MODE=mode,
        VERBOSITY="1" if opts.debug else "0",
    )
    if mode in ("start", "stop"):
        env["DELAY"] = f"{opts.delay:f}"
        if opts.connect_raw is not None:
            env["CONNECT"] = opts.connect_raw
    return env


def run_hooks(mode: str, opts: ClientOptions) -> None:
    """Run every network hook with ``mode`` as its argument, one after the other."""
    hooks = find_hooks(opts.network_hook_dir)
    if not hooks:
        return
    import subprocess  # only when there are hooks: it costs start-up time

    env = hook_environment(mode, opts, os.environ)
    for hook in hooks:
        log.debug("Running network hook %s %s", hook, mode)
        try:
            result = subprocess.run(  # noqa: S603 - the hook directory is trusted configuration
                [hook, mode], stdin=subprocess.DEVNULL, stdout=2, env=env, check=False
            )
        except OSError as exc:
            log.warning(
                "Network hook %s could not run: %s", os.path.basename(hook), exc.strerror or exc
            )
            continue
        if result.returncode != 0:
            log.warning(
                "Network hook %s %s exited with status %d",
                os.path.basename(hook),
                mode,
                result.returncode,
            )
