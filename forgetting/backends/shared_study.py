"""Several worker processes (Slurm array tasks, hosts) running the trials of one Optuna study.

Each worker runs a fixed share of the ``n_trials`` requested, so together they create exactly
``n_trials`` trials: asking "is the study done?" before each trial races with the other workers,
and ``optimize(n_trials=None)`` lets ``GridSampler`` hand a still-running grid point to a second
worker. Optuna numbers trials under a lock on the study row, and ``GridSampler`` gives trial
``k < len(grid)`` the grid point ``k``, so with ``n_trials <= len(grid)`` no point runs twice.
A worker that dies mid-trial is caught by the storage heartbeat (``open_lr_study``) and its trial
retried as a waiting trial, which the next ``ask`` of any worker takes before creating a new one.

Workers that open a fresh database at the same moment race to create Optuna's tables (one fails
with a duplicate-key error on PostgreSQL), so the tables are created once before the workers
start (``prepare_storage``; a Slurm ``submit.sh`` does it before submitting).
"""
from __future__ import annotations

from typing import Callable

import optuna

from forgetting.errors import check_range


def worker_share(n_trials: int, workers: int, index: int) -> int:
    """Trials worker ``index`` of ``workers`` runs: an even split, the first ones take the remainder."""
    check_range("workers", workers, 1)
    check_range("worker_index", index, 0, workers - 1)
    check_range("n_trials", n_trials, 0)
    return n_trials // workers + (index < n_trials % workers)


def run_worker_share(study: optuna.Study, objective: Callable[[optuna.Trial], float], n_trials: int,
                     workers: int, index: int, **optimize_options) -> int:
    """Run this worker's share of the study's trials; returns how many it ran."""
    share = worker_share(n_trials, workers, index)
    if share:
        study.optimize(objective, n_trials=share, **optimize_options)
    return share


def prepare_storage(storage: str) -> None:
    """Create Optuna's tables in ``storage`` unless they exist (``optuna storage upgrade`` cannot
    start from an empty database)."""
    optuna.storages.RDBStorage(storage)

