"""mandos-client: get the password from a Mandos server and print it (mandos-client(8mandos)).

Composition, in order: parse the options, read the key files (before touching the network:
keys.py), run the network hooks with ``start``, bring interfaces up, then try the one server
given with --connect (blocking, no event loop: connect.py); or for several --connect a first
round by the race's rules in one thread (connect.first_round: no event loop while every server
behaves); or race under asyncio every --connect server or every server Zeroconf finds
(race.py), until the password is known: a secret we can decrypt, or K shares of one set
combined (threshold.py). Then print it with no newline added, take down the interfaces we
brought up and run the hooks with ``stop``. SIGTERM, SIGINT and SIGHUP do the same clean-up and
then re-raise the signal.

Exit status: 0 with the password printed; 64 (EX_USAGE) for bad options; 69 (EX_UNAVAILABLE)
when a key file cannot be used, as the reference; 74 (EX_IOERR) when stdout cannot be written;
70 (EX_SOFTWARE) for a bug. --help, --usage and --version exit 0.
"""

from __future__ import annotations

import sys

from mandos.adapters import lazylog
from mandos.client import args as cli
from mandos.client import network
from mandos.client.args import PROG, ClientOptions, Info
from mandos.client.attempt import Timeouts
from mandos.client.connect import FirstRound, connect_and_retry, connect_target, first_round
from mandos.client.imports import without
from mandos.client.keys import Keys, decrypt, load_keys
from mandos.client.threshold import Judge
from mandos.core.errors import (
    EX_IOERR,
    EX_SOFTWARE,
    EX_UNAVAILABLE,
    EX_USAGE,
    KeyFileError,
    MandosError,
    UsageError,
)
from mandos.core.values import Secret
from mandos.initramfs import signals
from mandos.initramfs.process import STOP_SIGNALS, die_by_signal, write_all

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:  # only for typing: libgnutls is loaded when the keys are; asyncio is
    # imported only for Zeroconf discovery (it is a third of the --connect path's start-up)
    import asyncio
    from collections.abc import AsyncIterator, Sequence
    from types import FrameType
    from typing import Final, NoReturn

    from mandos.client.race import Target
    from mandos.client.share_worker import Worker
    from mandos.client.threshold import Slip39

log = lazylog.get("mandos.client")

LOG_PREFIX: Final = f"Mandos plugin {PROG}: "


class Interrupted(BaseException):
    """A stop signal arrived outside the event loop; unwinds to the clean-up."""


class _Stopper:
    """Turns a stop signal into an exception (synchronous parts) or a task cancel (asyncio)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.armed = True
        self._task: asyncio.Task[Secret] | None = None

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signals.handle(sig, self._handle)

    def attach(self, task: asyncio.Task[Secret] | None) -> None:
        self._task = task

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        if self._task is not None:
            self._task.get_loop().call_soon_threadsafe(self._task.cancel)
        elif self.armed:
            self.armed = False
            raise Interrupted

    def reraise(self) -> NoReturn:
        """Die by the signal that stopped us, as the reference does."""
        assert self.signum is not None
        die_by_signal(self.signum)


def _setup_logging(debug: bool, *, defer: bool = False) -> None:
    """Log to stderr with the reference's prefix. ``defer`` (--connect: asyncio and Zeroconf
    come only with the race, which sets it up first): import logging at the first warning, if
    any (lazylog.py)."""
    if defer and not debug:
        lazylog.defer_setup(lambda: _setup_logging(debug), lazylog.WARNING)
        return
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_PREFIX + "%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    if not debug:  # zeroconf's and asyncio's own chatter is only for --debug
        for name in ("zeroconf", "asyncio"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


async def obtain_secret(
    opts: ClientOptions,
    keys: Keys,
    interfaces: Sequence[str],
    timeouts: Timeouts | None = None,
    first: FirstRound | None = None,
) -> Secret:
    """Race every --connect server, or every server Zeroconf finds, until the password is known.

    Runs until cancelled otherwise (client/race.py). ``first`` is what first_round found.
    """
    from mandos.client.race import Race, Steps, Target
    from mandos.client.session import fetch_encrypted_secret

    # The race's --deadline bounds connect plus handshake; these bound the rest.
    t = timeouts or Timeouts(connect=None, handshake=None)
    judge = first.judge if first else Judge(lambda label, blob: decrypt(label, blob, keys))

    async def fetch(target: Target, steps: Steps) -> bytes:
        return await fetch_encrypted_secret(
            target.family, target.sockaddr, opts.priority, keys.credentials, t,
            on_handshake=steps.on_handshake, turn=steps.turn,
        )  # fmt: skip

    race = Race(
        fetch,
        lambda target, blob: judge.judge(target.label, blob),
        deadline=opts.deadline,
        retry=opts.retry,
        finished=first.finished if first else (),
    )
    if opts.connects:
        # Each --connect is its own server (one address each; the label names it).
        targets = [Target(*a, server=a[0]) for a in map(connect_target, opts.connects)]
        return await race.run(targets)
    return await race.run([], _discovered(interfaces))


async def _discovered(interfaces: Sequence[str]) -> AsyncIterator[Target]:
    """Every server address Zeroconf finds, as race targets; browses until cancelled."""
    from mandos.client import discovery  # only here: zeroconf is slow to import
    from mandos.client.race import Target

    async with discovery.ServerDiscovery(interfaces) as servers:
        # The first mDNS query waits 20-120 ms (RFC 6762 5.2): load what a found server
        # needs meanwhile, not after it is found.
        from mandos.adapters import openpgp  # noqa: F401
        from mandos.client import session  # noqa: F401

        async for addr in servers:
            log.debug("Found server %s", addr)
            label = str(addr) + (f" ({addr.name})" if addr.name else "")
            sockaddr = discovery.connect_args(addr)
            yield Target(label, addr.family, sockaddr, server=addr.name or str(addr))


def _run(
    opts: ClientOptions, keys: Keys, stopper: _Stopper, slip39: Slip39 | None = None
) -> int | None:
    """Hooks, interfaces, the asyncio part and the output; always cleans up.

    Returns the exit status, or None when a signal stopped it before a password was printed.
    """
    brought_up: list[str] = []
    try:
        network.run_hooks("start", opts)
        use, may_bring_up, missing = network.choose_interfaces(opts, network.sysfs_interfaces())
        for name in missing:
            log.warning("Not using nonexisting interface %s", name)
        network.bring_up(may_bring_up, opts.delay, brought_up)
        if not brought_up:
            log.debug("No interfaces were brought up")
        first = None
        if len(opts.connects) == 1:  # no event loop: asyncio is a third of the start-up
            secret = connect_and_retry(opts, keys)
        elif opts.connects and (first := first_round(opts, keys, slip39)).secret is not None:
            secret = first.secret
        else:
            if not opts.connects:
                network.wait_for_link_local(use, opts.delay)
            secret = _discover(opts, keys, use, stopper, first)
        stopper.armed = False
        # Printed before the clean-up, so that the disk is unlocked meanwhile.
        try:
            write_all(sys.stdout.fileno(), secret.reveal())
        except OSError as exc:
            log.error("cannot write the password: %s", exc.strerror or exc)
            return EX_IOERR
        return 0
    except Interrupted:
        return None
    finally:
        stopper.armed = False  # a second signal must not cut the clean-up short
        stopper.attach(None)
        network.take_down(brought_up)
        network.run_hooks("stop", opts)


def _discover(
    opts: ClientOptions,
    keys: Keys,
    interfaces: Sequence[str],
    stopper: _Stopper,
    first: FirstRound | None = None,
) -> Secret:
    """The race under asyncio (Zeroconf, or several --connect); a stop signal cancels it."""
    lazylog.setup_now()  # before asyncio and zeroconf, which log through logging itself
    # asyncio needs ssl only for its own TLS transports (ours is GnuTLS): a third of its import.
    with without("ssl", user="asyncio"):
        import asyncio

    try:
        return asyncio.run(_main_task(opts, keys, interfaces, stopper, first))
    except asyncio.CancelledError:
        raise Interrupted from None


async def _main_task(
    opts: ClientOptions,
    keys: Keys,
    interfaces: Sequence[str],
    stopper: _Stopper,
    first: FirstRound | None = None,
) -> Secret:
    import asyncio

    task = asyncio.current_task()
    assert task is not None
    stopper.attach(task)
    if stopper.signum is not None:  # arrived before the loop was running
        raise asyncio.CancelledError
    try:
        return await obtain_secret(opts, keys, interfaces, first=first)
    finally:
        stopper.attach(None)


def _usage_error(message: str) -> int:
    sys.stderr.write(
        f"{PROG}: {message}\nTry `{PROG} --help' or `{PROG} --usage' for more information.\n"
    )
    return EX_USAGE


def main(argv: Sequence[str] | None = None, worker: Worker | None = None) -> int:
    """Run mandos-client with these arguments (without the program name); the exit status.

    ``worker``: the share worker that client/launch.py (the entry point) starts for several
    --connect; closed here on every way out. Without it, shares are checked in-process.
    """
    stopper = _Stopper()
    stopper.install()
    try:
        parsed = cli.parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        return _usage_error(str(exc))
    except Interrupted:
        stopper.reraise()
    if isinstance(parsed, Info):
        texts = {
            Info.HELP: cli.help_text,
            Info.USAGE: cli.usage_text,
            Info.VERSION: cli.version_text,
        }
        sys.stdout.write(texts[parsed]())
        return 0
    _setup_logging(parsed.debug, defer=bool(parsed.connects))
    try:
        keys = load_keys(parsed)
        status = _run(cli.resolve_hook_dir(parsed), keys, stopper, worker)
    except Interrupted:
        status = None
    except MandosError as exc:
        log.error("%s", exc)  # one line, no traceback, by design
        return EX_UNAVAILABLE if isinstance(exc, KeyFileError) else exc.exit_code
    except Exception as exc:
        log.critical("internal error: %s", type(exc).__name__, exc_info=parsed.debug)
        return EX_SOFTWARE
    finally:
        if worker is not None:
            worker.close()
    if status is None:
        log.debug("%s exiting due to signal %s", PROG, stopper.signum)
        stopper.reraise()
    return status
