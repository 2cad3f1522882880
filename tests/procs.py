"""A snapshot of the process table from /proc, for tests and benchmarks that reap by PID."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcInfo:
    """One process: pid, parent, session, state letter and command name."""

    pid: int
    ppid: int
    sid: int
    state: str
    comm: str


def processes() -> list[ProcInfo]:
    """Every process now: pid, ppid, session, state and command name."""
    procs: list[ProcInfo] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        head, _, tail = stat.rpartition(")")  # comm may contain spaces and parentheses
        fields = tail.split()
        comm = head.partition("(")[2]
        procs.append(ProcInfo(int(entry.name), int(fields[1]), int(fields[3]), fields[0], comm))
    return procs


def live_children(parent: int) -> set[int]:
    """PIDs of ``parent``'s children that are not zombies."""
    return {p.pid for p in processes() if p.ppid == parent and p.state != "Z"}
