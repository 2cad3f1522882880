"""client/threshold.py: judging a share loads SLIP-39 without OpenSSL's libcrypto."""

from __future__ import annotations

import subprocess
import sys

from mandos.adapters import slip39

JUDGE_ONE_SHARE = """
import sys
from mandos.client.threshold import Judge, Next
from mandos.core.values import Secret
payload = bytes.fromhex(sys.argv[1])
assert Judge(lambda label, blob: Secret(blob)).judge("a", payload) is Next.FINISHED
maps = open("/proc/self/maps").read()
print("libcrypto" in maps, "hashlib" in sys.modules)
"""


def test_a_share_is_judged_without_libcrypto() -> None:
    """hashlib would load libcrypto (about 6 ms, 3.4 MiB) for a PBKDF2 SLIP-39 never runs here."""
    payload = slip39.make_shares(b"passphrase", 2, 3, bytes(16))[0]
    done = subprocess.run(
        [sys.executable, "-c", JUDGE_ONE_SHARE, payload.hex()],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["False", "True"], done.stderr


OPEN_THEN_COLLECT = """
import sys
from mandos.client.threshold import Judge, Next
from mandos.core.shares import Share
from mandos.core.values import Secret
judge = Judge(lambda label, blob: Secret(blob))
share = judge.open("a", bytes.fromhex(sys.argv[1]))
print(isinstance(share, Share), "mandos.adapters.slip39" in sys.modules)
print(judge.collect("a", share) is Next.FINISHED)
"""


def test_open_reads_a_share_without_slip39_and_collect_keeps_it() -> None:
    """The first round's two steps: open() needs no SLIP-39 (the next server's payload is
    fetched meanwhile); collect() checks the share and keeps it."""
    payload = slip39.make_shares(b"passphrase", 2, 3, bytes(16))[1]
    done = subprocess.run(
        [sys.executable, "-c", OPEN_THEN_COLLECT, payload.hex()],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["True", "False", "True"], done.stderr
