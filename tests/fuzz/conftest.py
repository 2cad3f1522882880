"""The fuzz harness: hypothesis against the wire and the state file, brief unless asked.

``MANDOS_FUZZ_EXAMPLES=N`` sets the examples per target (default 100: a few seconds in all in CI);
a longer run is ``MANDOS_FUZZ_EXAMPLES=20000 pytest tests/fuzz -p no:logging`` (docs/testing.md).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("MANDOS_FUZZ_EXAMPLES", "100"))

#: Applied to every fuzz target: no per-example deadline (real sockets and GnuTLS), and no
#: example database, so a CI run neither slows down on a busy machine nor writes files.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
