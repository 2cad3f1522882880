"""The VM test's jobs (tests/vm/jobs.py): its image builds and boot cases, run side by side.

Every selected VM test's boot case, and the image it boots, is planned when the first VM test
sets up; they run in worker processes, at most ``jobs.workers()`` at a time, each as soon as
its image is built. A test then reads its case's outcome: its assertions ran in the job.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.vm import jobs


@pytest.fixture(scope="session")
def vm_jobs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[jobs.Scheduler]:
    """The session's scheduler, its jobs planned and the first started; closed at the end."""
    scheduler = jobs.Scheduler(jobs.JOBS, tmp_path_factory.mktemp("vm-jobs"), jobs.workers())
    try:
        scheduler.plan(jobs.selected(request.session.items))
        yield scheduler
    finally:
        scheduler.close()
