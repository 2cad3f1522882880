"""client/share_worker.py: SLIP-39 in a forked child, with the same answers as in-process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from mandos.adapters import slip39
from mandos.client.share_worker import Worker
from mandos.core import shares
from mandos.core.errors import ShareError

SET_ID = bytes(range(16))


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker()
    w.start()
    try:
        yield w
    finally:
        w.close()


def three_shares() -> list[shares.Share]:
    return [shares.parse(p) for p in slip39.make_shares(b"correct horse", 2, 3, SET_ID)]


def corrupted(share: shares.Share) -> shares.Share:
    """``share`` with its last word swapped for another: the checksum no longer holds."""
    words = share.words.split()
    words[-1] = "academic" if words[-1] != "academic" else "acid"
    return shares.Share(share.set_id, share.index, share.count, share.threshold, " ".join(words))


def test_the_child_verifies_and_recovers_as_slip39_does(worker: Worker) -> None:
    group = three_shares()
    for share in group:
        worker.verify(share)
    assert worker.recover(group[1:]) == slip39.recover(group[1:])
    assert shares.unpack(worker.recover(group[:2]), SET_ID).reveal() == b"correct horse"


def test_a_refusal_is_the_same_share_error(worker: Worker) -> None:
    bad = corrupted(three_shares()[0])
    with pytest.raises(ShareError) as in_process:
        slip39.verify(bad)
    with pytest.raises(ShareError) as in_child:
        worker.verify(bad)
    assert str(in_child.value) == str(in_process.value)
    with pytest.raises(ShareError, match="do not combine"):
        worker.recover([three_shares()[0], shares.parse(slip39.make_shares(b"x", 2, 3, SET_ID)[1])])


def test_a_dead_child_leaves_the_work_in_process(worker: Worker) -> None:
    """Rule 3: killed, the child's calls run in-process; the answer is the same."""
    pid = worker._pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    group = three_shares()
    worker.verify(group[0])
    assert worker.recover(group[:2]) == slip39.recover(group[:2])
    assert worker._pid is None  # reaped when it was found gone


def test_close_reaps_the_child() -> None:
    w = Worker()
    w.start()
    pid = w._pid
    assert pid is not None
    w.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


PARENT = """
import sys
from mandos.adapters import slip39
from mandos.client.share_worker import Worker
from mandos.core import shares
group = [shares.parse(p) for p in slip39.make_shares(b"pw", 2, 3, bytes(16))]
del sys.modules["mandos.adapters.slip39"], sys.modules["shamir_mnemonic"]
worker = Worker()
worker.start()
worker.verify(group[0])
value = worker.recover(group[:2])
worker.close()
print(shares.unpack(value, bytes(16)).reveal().decode(), "mandos.adapters.slip39" in sys.modules)
"""


def test_the_parent_never_imports_slip39_and_its_stdout_is_its_own() -> None:
    """The child imports SLIP-39 and writes nothing to stdout (the password's channel)."""
    done = subprocess.run(
        [sys.executable, "-c", PARENT], capture_output=True, text=True, timeout=60, check=True
    )
    assert (done.stdout, done.stderr) == ("pw False\n", "")
