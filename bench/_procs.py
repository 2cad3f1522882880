"""Process measurements for the benchmarks: RSS of a process tree, sampled in a thread."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.procs import processes


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for proc in processes():
        kids.setdefault(proc.ppid, []).append(proc.pid)
    return kids


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants."""
    kids = _children_map()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(kids.get(pid, ()))
    return pids


def rss_kib(pid: int) -> int:
    """Resident set size of one process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(root: int) -> int:
    """Summed RSS of ``root`` and its descendants, in KiB."""
    return sum(rss_kib(pid) for pid in tree_pids(root))


class PeakRss:
    """Samples the RSS of a process tree every ``interval`` seconds; ``peak_kib`` is the max."""

    def __init__(self, root: int, interval: float = 0.02) -> None:
        self._root = root
        self._interval = interval
        self._stop = threading.Event()
        self.peak_kib = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, tree_rss_kib(self._root))
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
