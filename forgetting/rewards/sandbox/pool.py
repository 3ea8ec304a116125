"""Many programs at once: :func:`run_batch`, a pool of sandboxes."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Mapping

from forgetting.errors import check_range
from forgetting.rewards.sandbox.interpreter import base_interpreter
from forgetting.rewards.sandbox.isolation import chosen_isolation
from forgetting.rewards.sandbox.jobs import Job
from forgetting.rewards.sandbox.limits import check_limits
from forgetting.rewards.sandbox.runner import run_tests
from forgetting.rewards.sandbox.verdict import Result


def run_job(job: Job, *, isolation: str | None = None) -> Result:
    return run_tests(job.program, job.tests, job.timeout, job.memory_mb, isolation=isolation)


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_batch(jobs: Iterable[Job | Mapping | tuple], workers: int | None = None, *,
              isolation: str | None = None) -> list[Result]:
    """Run many jobs, at most ``workers`` sandboxes at a time (default: one per core).

    Results come back in the order of ``jobs``. Threads suffice for the pool: each job is a
    child process, and the threads only wait on its pipes.
    """
    jobs = [_as_job(job) for job in jobs]
    for job in jobs:
        check_limits(job.timeout, job.memory_mb)
    workers = workers or default_workers()
    check_range("workers", workers, 1, 1024)
    # Probe once here, so a missing sandbox fails before any job and threads never probe at once.
    chosen_isolation(isolation)
    base_interpreter()
    if workers == 1 or len(jobs) <= 1:
        return [run_job(job, isolation=isolation) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        return list(pool.map(lambda job: run_job(job, isolation=isolation), jobs))


def _as_job(job: Job | Mapping | tuple) -> Job:
    if isinstance(job, Job):
        return job
    if isinstance(job, Mapping):
        return Job(**job)
    return Job(*job)
