"""Learning-rate studies: a grid (the published lists) or TPE over a log range with a median pruner.

Storage is an RDB URL (``sqlite:///…`` next to the tracking store by default, PostgreSQL/MySQL on
a cluster) with heartbeats, so a trial whose worker was killed is marked failed and retried once
(``RetryHeartbeatStaleTrialCallback``) and several workers can share one study.
"""
from __future__ import annotations

import warnings

import optuna

from forgetting.errors import UsageError
from forgetting.tracking import home

RDB_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg2://", "mysql://", "mysql+pymysql://")
HEARTBEAT_SECONDS = 10


def default_storage() -> str:
    return f"sqlite:///{home() / 'optuna.db'}"


def check_storage(storage: str) -> None:
    if storage and not storage.startswith(RDB_SCHEMES):
        raise UsageError(f"storage={storage!r} is not an RDB URL ({', '.join(RDB_SCHEMES)}...)")


def open_lr_study(name: str, storage: str, lrs: tuple[float, ...] | None, seed: int = 0) -> optuna.Study:
    """The study ``name`` (created or resumed). ``lrs`` gives a grid; ``None`` gives TPE with pruning."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        rdb = optuna.storages.RDBStorage(
            storage or default_storage(), heartbeat_interval=HEARTBEAT_SECONDS,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
    except Exception as error:  # noqa: BLE001 - any driver error means the same to the user
        raise UsageError(f"storage={storage!r} is unreachable ({type(error).__name__}: {error})".splitlines()[0]) from None
    if lrs is not None:
        sampler, pruner = optuna.samplers.GridSampler({"lr": list(lrs)}, seed=seed), optuna.pruners.NopPruner()
    else:
        sampler, pruner = optuna.samplers.TPESampler(seed=seed), optuna.pruners.MedianPruner(n_startup_trials=2)
    return optuna.create_study(study_name=name, storage=rdb, sampler=sampler, pruner=pruner,
                               direction="maximize", load_if_exists=True)


def pending_grid_values(study: optuna.Study, lrs: tuple[float, ...]) -> list[float]:
    """Grid values no finished trial has covered yet (a resumed study runs only these)."""
    done = {t.params.get("lr") for t in study.trials
            if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)}
    return [lr for lr in lrs if lr not in done]
