"""mandos-monitor's terminal UI (textual): the client list above, the server's events below.

Rules of this module:
- What is shown comes from ``model`` (pure); this module only wires D-Bus signals and keys
  to it. Every D-Bus call runs in a textual worker owned by the app; a failure becomes a
  bold log line, never a crash.
- The keys are the reference's (mandos-monitor 1.8.16), listed in ``BINDINGS``.
- Timestamps in the log are local time (as the reference's ``%(asctime)s``); countdowns use
  naive UTC, the server's clock format.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import OptionList, RichLog, Rule
from textual.widgets.option_list import Option

from mandos import __version__
from mandos.adapters.dbus_api import (
    CLIENT_INTERFACE,
    OBJECT_MANAGER_IFACE,
    PROPERTIES_IFACE,
    SERVER_INTERFACE,
)
from mandos.adapters.dbus_client import MandosBus
from mandos.core.errors import BusError
from mandos.monitor import model

__all__ = ["MonitorApp"]

MAX_LOG_LINES = 1000


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class MonitorApp(App[None]):
    """The whole monitor: connect, list clients, follow signals, act on keys."""

    CSS_PATH = "app.tcss"
    TITLE = "Mandos Monitor"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,Q", "quit", "Quit"),
        Binding("ctrl+l", "redraw", "Redraw", show=False),
        Binding("question_mark,f1,escape", "help", "Help"),
        Binding("l,D", "toggle_log", "Log", show=False),
        Binding("w,i", "toggle_wrap", "Wrap", show=False),
        Binding("v", "toggle_verbose", "Verbose", show=False),
        Binding("plus", "client('enable')", "Enable", show=False),
        Binding("minus", "client('disable')", "Disable", show=False),
        Binding("a", "client('approve')", "Approve", show=False),
        Binding("d", "client('deny')", "Deny", show=False),
        Binding("R,underscore,ctrl+k", "client('remove')", "Remove", show=False),
        Binding("s", "client('start_checker')", "Start checker", show=False),
        Binding("S", "client('stop_checker')", "Stop checker", show=False),
        Binding("C", "client('checked_ok')", "Checker OK", show=False),
        Binding("ctrl+p,k", "move('up')", show=False),
        Binding("ctrl+n,j", "move('down')", show=False),
        Binding("b,alt+v", "move('page_up')", show=False),
        Binding("ctrl+v,space,f", "move('page_down')", show=False),
    ]

    def __init__(self, connect: Callable[[], Awaitable[MandosBus]] = MandosBus.connect) -> None:
        super().__init__()
        self._connect = connect
        self.bus: MandosBus | None = None
        self.clients = model.ClientList()
        self.log_lines: list[model.LogLine] = []
        self.verbose = False
        self.wrap = True
        self.loaded = False  # the initial client list has been read

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield OptionList(id="clients")
        yield Rule(id="divider")
        yield RichLog(id="log", wrap=True, markup=False, max_lines=MAX_LOG_LINES)

    async def on_mount(self) -> None:
        self._append(model.LogLine(f"Mandos Monitor version {__version__}", bold=True))
        self._append(model.LogLine("q: Quit  ?: Help", bold=True))
        self.query_one("#clients", OptionList).focus()
        self.set_interval(1.0, self._tick)
        self.run_worker(self._start(), exclusive=True, group="start")

    async def _start(self) -> None:
        try:
            self.bus = await self._connect()
            await self.bus.subscribe(self._on_signal)
            found = await self.bus.clients()
        except BusError as exc:
            self._note(logging.WARNING, "Note: No Mandos server running.")
            self._note(logging.DEBUG, str(exc))
            found = {}
        else:
            if not found:
                self._note(logging.WARNING, "Note: Server has no clients.")
        for path, props in found.items():
            self.clients.add(path, props)
            self._note(logging.DEBUG, f"Created client {props['Name']}")
        self._rebuild()
        self.loaded = True

    async def on_unmount(self) -> None:
        if self.bus is not None:
            self.bus.close()

    # ------------------------------------------------------------------ log

    def _note(self, level: int, message: str) -> None:
        self._append(model.log_line(datetime.now(), level, message))  # local time, as the reference

    def _append(self, line: model.LogLine) -> None:
        self.log_lines.append(line)
        del self.log_lines[:-MAX_LOG_LINES]
        if line.level >= logging.INFO or self.verbose:
            self._write(line)

    def _write(self, line: model.LogLine) -> None:
        self.query_one("#log", RichLog).write(
            Text(line.text, style="bold" if line.bold else ""), scroll_end=True
        )

    def _rewrite_log(self) -> None:
        pane = self.query_one("#log", RichLog)
        pane.clear()
        pane.wrap = self.wrap
        for line in self.log_lines:
            if line.level >= logging.INFO or self.verbose:
                self._write(line)

    def shown_log(self) -> list[str]:
        """The texts of the log lines currently shown (verbose mode decides about debug)."""
        return [ln.text for ln in self.log_lines if ln.level >= logging.INFO or self.verbose]

    # ------------------------------------------------------------------ client list

    def row_texts(self) -> list[str]:
        """The client rows as they are on screen now."""
        widget = self.query_one("#clients", OptionList)
        return [str(widget.get_option_at_index(i).prompt) for i in range(widget.option_count)]

    def _rebuild(self) -> None:
        widget = self.query_one("#clients", OptionList)
        chosen = self.selected_path()
        rows = self.clients.rows(_utc_now())
        widget.set_options(Option(Text(text), id=path) for path, text in rows)
        paths = [path for path, _ in rows]
        if rows:
            widget.highlighted = paths.index(chosen) if chosen in paths else 0

    def _tick(self) -> None:
        widget = self.query_one("#clients", OptionList)
        for path, text in self.clients.rows(_utc_now()):
            try:
                if str(widget.get_option(path).prompt) != text:
                    widget.replace_option_prompt(path, Text(text))
            except LookupError:  # pragma: no cover - list rebuilt in between
                continue

    def selected_path(self) -> str | None:
        """The object path of the highlighted client, if any."""
        option = self.query_one("#clients", OptionList).highlighted_option
        return None if option is None else option.id

    # ------------------------------------------------------------------ signals

    def _on_signal(self, path: str, interface: str, member: str, body: list[Any]) -> None:
        if interface == OBJECT_MANAGER_IFACE:
            self._object_manager(member, body)
        elif interface == PROPERTIES_IFACE:
            if self.clients.update(path, body[1]):
                self._tick()
        elif interface == CLIENT_INTERFACE:
            name = self.clients.name(path)
            said = model.signal_message(name, member, body) if name is not None else None
            if said is not None:
                self._note(*said)
            self._tick()
        elif interface == SERVER_INTERFACE and member == "ClientNotFound" and len(body) == 2:
            self._note(logging.INFO, model.client_not_found_message(body[0], body[1]))

    def _object_manager(self, member: str, body: list[Any]) -> None:
        if member == "InterfacesAdded" and CLIENT_INTERFACE in body[1]:
            props = body[1][CLIENT_INTERFACE]
            self.clients.add(body[0], props)
            self._note(logging.DEBUG, f"Created client {props['Name']}")
            self._rebuild()
        elif member == "InterfacesRemoved" and CLIENT_INTERFACE in body[1]:
            name = self.clients.remove(body[0])
            if name is None:
                self._note(logging.WARNING, f"Unknown client {body[0]} removed")
            else:
                self._note(logging.INFO, f"Client {name} was removed")
            self._rebuild()

    # ------------------------------------------------------------------ actions

    def action_help(self) -> None:
        """Show the key help in the log (showing the log if it was hidden)."""
        self.query_one("#log", RichLog).display = True
        self.query_one("#divider", Rule).display = True
        for text in model.HELP_LINES:
            self._append(model.LogLine(text, bold=True))

    def action_redraw(self) -> None:
        """Redraw the whole screen."""
        self.refresh(layout=True, repaint=True)

    def action_toggle_log(self) -> None:
        """Show or hide the log pane."""
        pane = self.query_one("#log", RichLog)
        pane.display = not pane.display
        self.query_one("#divider", Rule).display = pane.display
        self._note(logging.DEBUG, f"Log visibility changed to: {bool(pane.display)}")

    def action_toggle_wrap(self) -> None:
        """Wrap long log lines, or clip them."""
        self.wrap = not self.wrap
        self._rewrite_log()
        self._note(logging.DEBUG, f"Wrap mode: {'any' if self.wrap else 'clip'}")

    def action_toggle_verbose(self) -> None:
        """Show debug messages in the log too, or stop showing them."""
        if self.verbose:
            self._note(logging.INFO, "Verbose mode: Off")
            self.verbose = False
            self._rewrite_log()
        else:
            self.verbose = True
            self._rewrite_log()
            self._note(logging.INFO, "Verbose mode: On")

    def action_move(self, how: str) -> None:
        """Move in the focused pane: up, down, page_up or page_down."""
        focused = self.focused
        if isinstance(focused, OptionList):
            names = {"up": "cursor_up", "down": "cursor_down"}
        elif isinstance(focused, RichLog):
            names = {"up": "scroll_up", "down": "scroll_down"}
        else:
            return
        getattr(focused, f"action_{names.get(how, how)}")()

    def action_client(self, what: str) -> None:
        """Act on the highlighted client (enable, disable, approve, deny, remove, ...)."""
        path = self.selected_path()
        if path is None or self.bus is None:
            return
        self.run_worker(self._client_call(self.bus, path, what), group="calls")

    async def _client_call(self, bus: MandosBus, path: str, what: str) -> None:
        calls: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "enable": lambda: bus.set_property(path, "Enabled", True),
            "disable": lambda: bus.set_property(path, "Enabled", False),
            "approve": lambda: bus.approve(path, True),
            "deny": lambda: bus.approve(path, False),
            "remove": lambda: bus.remove_client(path),
            "start_checker": lambda: bus.set_property(path, "CheckerRunning", True),
            "stop_checker": lambda: bus.set_property(path, "CheckerRunning", False),
            "checked_ok": lambda: bus.checked_ok(path),
        }
        try:
            await calls[what]()
        except BusError as exc:
            self._note(logging.WARNING, str(exc).replace("\n", " "))
