"""The running server: registry, listener, scheduler, checkers, state saving and signals.

Every task has an owner (one ``asyncio.TaskGroup``). The scheduler is the only place that feeds
the clock into the core: it sleeps until ``registry.next_deadline()`` or until something changed,
then calls ``tick(now)``; checker results and reload requests reach the core through it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from mandos.adapters import statefile
from mandos.adapters.cause import RELOAD, caused_by
from mandos.adapters.checkers import CheckerRunner
from mandos.adapters.listener import listening_port, open_listening_socket
from mandos.adapters.memory import release_free_memory
from mandos.core import state_model
from mandos.core.client_state import ClientState
from mandos.core.config import ClientConfig, ServerConfig
from mandos.core.effects import Effect
from mandos.core.errors import BusError, MandosError, StateFileError
from mandos.core.registry import Registry
from mandos.server.accept import AcceptLoop
from mandos.server.connection import ConnectionHandler
from mandos.server.effects import BusService, EffectRunner
from mandos.server.notify import sd_notify
from mandos.server.observer import Observer

log = logging.getLogger("mandos")

SAVE_MIN_INTERVAL_SECONDS = 1.0
#: Saving may take at most this share of a core: with 10,000 clients a save costs 0.1-0.3 s
#: (the file is ~7 MB), and checker results would otherwise ask for one every second; so they
#: come every 20-60 s then (the reference saves only when it stops).
SAVE_MAX_SHARE = 0.005
MAX_SLEEP_SECONDS = 60.0
TICK_BATCH_SECONDS = 0.1

ClientsLoader = Callable[[], tuple[ClientConfig, ...]]


def utc_now() -> datetime:
    """The wall clock, timezone-aware UTC (every core timestamp is shown to users)."""
    return datetime.now(UTC)


class MandosServer:
    """Composes the adapters around one :class:`Registry` and runs until told to stop."""

    def __init__(
        self,
        config: ServerConfig,
        load_clients: ClientsLoader,
        *,
        clients: tuple[ClientConfig, ...] | None = None,
        now: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        """``load_clients`` reads clients.conf (at start and on SIGHUP); ``clients``, when
        given, are what it already returned, so that start-up does not parse the file twice."""
        self.config = config
        self._load_clients = load_clients
        self._initial_clients = clients
        self._now = now
        self._rng = rng or random.Random()  # noqa: S311 - checker jitter, not cryptography
        self._state_path = statefile.state_path(config.statedir)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._save_wanted = asyncio.Event()
        self._reload_wanted = False
        self._inbox: list[Effect] = []
        self._dump = statefile.StateEncoder()
        self._writing: asyncio.Future[None] | None = None  # the saver's write in its thread
        self.checkers = CheckerRunner(self._checker_exited, debug=config.debug)
        self.effects = EffectRunner(self.checkers, self._save_wanted.set, self._wake.set)
        self.registry: Registry | None = None
        self.observer = Observer.from_settings(
            now,
            lambda: self.registry,
            audit_log=config.audit_log,
            metrics_address=config.metrics_address,
            metrics_per_client=config.metrics_per_client,
            checker_output=self.checkers.last_output,
        )
        self.effects.watch(self.observer.effect)
        self.port: int | None = None
        #: Called with the new Zeroconf name after a collision (main uses it for log lines).
        self.on_rename: Callable[[str], None] = lambda _name: None

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, on_ready: Callable[[int], None] | None = None) -> None:
        """Serve until SIGTERM/SIGINT (or :meth:`stop`); saves the state on the way out."""
        registry, initial = self._start_registry()
        await self.observer.start()  # a metrics address in use fails the start-up
        listener = open_listening_socket(self.config)
        self.port = listening_port(listener)
        loop = asyncio.get_running_loop()
        self._install_signal_handlers(loop)  # before the line tests and admins wait for
        log.info(
            "Listening on port %d, address %s%s; %d clients loaded",
            self.port,
            listener.getsockname()[0],
            f" (interface {self.config.interface})" if self.config.interface else "",
            len(registry.names()),
        )
        bus = await self._connect_bus() if self.config.use_dbus else None
        try:
            await self.effects.apply(initial)
            self._save_wanted.set()
            await self._serve(listener, registry, bus, on_ready)
        finally:
            listener.close()
            if bus is not None:
                await bus.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self.checkers.aclose()
            if self._writing is not None:  # an older state still being written
                await asyncio.wait({self._writing})
            self._save_now(registry)

    def _start_registry(self) -> tuple[Registry, list[Effect]]:
        """The registry of clients.conf's clients, with the saved state applied."""
        clients = self._initial_clients
        if clients is None:
            clients = self._load_clients()
        self._initial_clients = None
        if not clients:
            log.warning("No clients defined")
        now = self._now()
        if removed := statefile.remove_stale_temp_files(self.config.statedir):
            log.info("Removed %d temporary files of unfinished state saves", removed)
        restored = self._restore(clients, now) if self.config.restore else None
        if restored is None:
            registry = Registry(clients, now, self._rng)
            restored_effects: list[Effect] = []
        else:  # built from the restored states: not started twice (10,000 clients: ~0.1 s)
            registry = Registry.of_states(restored[0], now, self._rng)
            restored_effects = restored[1]
        self.registry = registry
        initial = [*registry.announce(), *restored_effects]
        release_free_memory()  # what reading clients.conf used and freed (~60 MiB at 10,000)
        return registry, initial

    async def _serve(
        self,
        listener: socket.socket,
        registry: Registry,
        bus: BusService | None,
        on_ready: Callable[[int], None] | None,
    ) -> None:
        """Run every task of the running server until :meth:`stop`, then end them all."""
        assert self.port is not None
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(self._accept_loop(listener, registry)),
                tg.create_task(self._scheduler(registry)),
                tg.create_task(self._saver(registry)),
                tg.create_task(self.observer.run()),
            ]
            if self.config.zeroconf:
                tasks.append(tg.create_task(self._announce()))
            if bus is not None:
                tasks.append(tg.create_task(bus.supervise()))
            sd_notify("READY=1\nSTATUS=Serving")
            if on_ready is not None:
                on_ready(self.port)
            await self._stop.wait()
            sd_notify("STOPPING=1")
            for task in tasks:
                task.cancel()

    def now(self) -> datetime:
        """The current time, as the core sees it."""
        return self._now()

    async def apply(self, effects: list[Effect]) -> None:
        """Carry out effects of a command given from outside (D-Bus)."""
        await self.effects.apply(effects)

    async def _connect_bus(self) -> BusService | None:
        from mandos.adapters.dbus_service import DBusService

        try:
            bus = await DBusService.connect(self)
        except BusError as exc:
            log.warning("Disabling D-Bus: %s", exc)
            return None
        self.effects.add_sink(bus)
        return bus

    def stop(self) -> None:
        """Ask :meth:`run` to finish."""
        self._stop.set()

    def reload(self) -> None:
        """Re-read clients.conf at the scheduler's next turn (SIGHUP)."""
        self._reload_wanted = True
        self.observer.reopen()  # logrotate moved the audit log
        self._wake.set()

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    # -- tasks --------------------------------------------------------------------------------

    async def _accept_loop(self, listener: socket.socket, registry: Registry) -> None:
        workers = self.config.handshake_workers
        executor = ThreadPoolExecutor(workers, "handshake") if workers else None
        handler = ConnectionHandler(
            registry,
            self.effects,
            priority=self.config.priority,
            handshake_timeout=self.config.handshake_timeout.total_seconds(),
            now=self._now,
            observer=self.observer,
            executor=executor,
        )
        try:
            await AcceptLoop(listener, handler).run()
        finally:
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    async def _scheduler(self, registry: Registry) -> None:
        while True:
            self._wake.clear()
            effects: list[Effect] = []
            if self._reload_wanted:
                self._reload_wanted = False
                with caused_by(RELOAD):
                    await self.effects.apply(self._reload(registry))
            effects.extend(self._inbox)
            self._inbox.clear()
            effects.extend(registry.tick(self._now()))
            if effects:
                await self.effects.apply(effects)
                self._wake.clear()
            deadline = registry.next_deadline()
            # Capped, so that a wall clock set back costs at most one late tick.
            delay = MAX_SLEEP_SECONDS
            if deadline is not None:
                delay = min(delay, max(0.0, (deadline - self._now()).total_seconds()))
            # A scope, never asyncio.wait_for: in Python 3.11 wait_for swallows a cancellation
            # that arrives in the step its inner wait completes (gh-86296), and SIGTERM was lost.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            # Woken by a change or a deadline: let a burst gather, so that a storm of
            # connections, or the checker starts of 10,000 clients (83 a second at the default
            # interval), cost one turn per batch, not one each. Timers fire this much late.
            await asyncio.sleep(TICK_BATCH_SECONDS)

    async def _saver(self, registry: Registry) -> None:
        while True:
            await self._save_wanted.wait()
            self._save_wanted.clear()
            began = time.thread_time()  # the CPU it costs here, not the wait for the disk
            data = self._dump(registry)
            spent = time.thread_time() - began
            # Written and fsynced in a thread: the event loop keeps serving meanwhile. Shielded,
            # and awaited again before the last save, so that a newer state is never overwritten.
            self._writing = asyncio.ensure_future(asyncio.to_thread(self._write_state, data))
            del data  # not held while the saver waits: 7 MB at 10,000 clients
            await asyncio.shield(self._writing)
            release_free_memory()  # the encoding's garbage: 10,000 clients, ~20 MiB of RSS
            await asyncio.sleep(save_pause(spent))

    async def _announce(self) -> None:
        from mandos.adapters.zeroconf_service import announce_forever

        assert self.port is not None
        try:
            await announce_forever(self.config, self.port, on_rename=self._renamed)
        except MandosError as exc:
            # Clients given --connect can still be served: keep running, loudly.
            log.error("Zeroconf announcement failed: %s", exc)

    def _renamed(self, name: str) -> None:
        log.warning("Changing Zeroconf service name to %r", name)
        self.on_rename(name)

    # -- callbacks and helpers ----------------------------------------------------------------

    def _checker_exited(self, name: str, returncode: int | None, signum: int | None) -> None:
        if self.registry is None:
            return
        self._inbox.extend(self.registry.checker_finished(name, returncode, signum, self._now()))
        self._wake.set()

    def _reload(self, registry: Registry) -> list[Effect]:
        try:
            clients = self._load_clients()
        except MandosError as exc:
            log.error("Not reloading clients.conf: %s", exc)
            return []
        log.info("Reloaded clients.conf: %d clients", len(clients))
        self.observer.reloaded(len(clients))
        return list(registry.reload(clients, self._now()))

    def _restore(
        self, clients: tuple[ClientConfig, ...], now: datetime
    ) -> tuple[list[ClientState], list[Effect]] | None:
        """The clients' states with the saved state applied, or None when there is none to
        apply; a file of the wrong shape is set aside like a corrupt one."""
        try:
            data = statefile.load(self._state_path)
            if data is None:
                return None
            try:
                return state_model.restored_states(clients, data, now)
            except StateFileError as exc:
                problem = str(exc).removeprefix("state file: ")
                raise statefile.reject(self._state_path, f"is unusable ({problem})") from None
        except StateFileError as exc:
            log.error("%s", exc)
            return None

    def _save_now(self, registry: Registry) -> None:
        self._write_state(self._dump(registry))

    def _write_state(self, data: bytes) -> None:
        """Write the encoded state (in the loop's thread or the saver's)."""
        try:
            statefile.save(self._state_path, data)
        except StateFileError as exc:
            log.error("%s", exc)
        else:
            self.observer.state_saved()


def save_pause(spent: float) -> float:
    """Seconds to wait after a save that took ``spent`` seconds of CPU before the next one."""
    return max(SAVE_MIN_INTERVAL_SECONDS, spent / SAVE_MAX_SHARE)
