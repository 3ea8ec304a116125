"""The ``finetune`` stage: accuracy before fine-tuning, then an Optuna learning-rate sweep.

Each trial fine-tunes a fresh copy of the model on the task's train split and reports accuracy
on its eval split, in its own nested MLflow run. The stage logs ``baseline_acc``, ``best_acc``,
``best_lr`` and ``accuracy_lr_<lr>`` per trial. The Optuna study is named after the stage's
cache key, so a killed sweep resumes with the trials it finished.

How a trial trains and scores, which tasks it takes and its default grid are the ``mode``'s, a
``FinetuneMode`` (``forgetting.training.finetune_mode``) in ``FINETUNE_MODES``: ``answer`` trains a
causal LM on prompt + correct choice of a multiple-choice task (the unlearning study);
``classification`` trains a sequence classifier and registers the best trial's model with its
pruning statistics (the classifiers' study).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import mlflow

from forgetting.device import DEVICE_HELP, PRECISIONS
from forgetting.errors import UsageError, check_choice, check_range
from forgetting.models import DEFAULT_MODEL
from forgetting.registry import Registry
from forgetting.training.finetune_mode import FinetuneMode

SAMPLERS = ("grid", "tpe")

FINETUNE_MODES = Registry("mode")
FINETUNE_MODES.register("answer", FinetuneMode(
    "forgetting.training.finetune:AnswerFinetuning", task_check="forgetting.training.finetune:check_answer_task",
    default_lrs="forgetting.training.finetune:answer_learning_rates"))
FINETUNE_MODES.register("classification", FinetuneMode(
    "forgetting.training.classifier_finetuning:ClassifierFinetuning",
    task_check="forgetting.data.classification:check_classification_task",
    default_lrs="forgetting.training.classifier_finetuning:classifier_learning_rates", classifier=True))


@dataclass(frozen=True)
class FinetuneConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "model spec (e.g. models:/name/version)"})
    task: str = field(default="counterfact", metadata={"help": "a multiple-choice task (classification: sst2)"})
    mode: str = field(default="answer", metadata={"help": "answer (causal LM on the correct choice) or classification"})
    lrs: str = field(default="", metadata={"help": "comma-separated grid ('' = the task's published list)"})
    sampler: str = field(default="grid", metadata={"help": "grid (over lrs) or tpe (over [lr_min, lr_max])"})
    n_trials: int = field(default=8, metadata={"help": "trials of the tpe sampler"})
    lr_min: float = field(default=1e-6, metadata={"help": "tpe lower bound"})
    lr_max: float = field(default=1e-4, metadata={"help": "tpe upper bound"})
    epochs: int = field(default=1, metadata={"help": "passes over the train rows per trial"})
    train_limit: int = field(default=0, metadata={"help": "train rows (0 = the whole train split)"})
    eval_limit: int = field(default=0, metadata={"help": "eval rows (0 = the whole eval split)"})
    batch_size: int = field(default=8, metadata={"help": "examples per step and per scoring batch"})
    precision: str = field(default="bf16-autocast", metadata={"help": ", ".join(PRECISIONS)})
    device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    seed: int = field(default=0, metadata={"help": "seed of splits, row order and the sampler"})
    storage: str = field(default="", metadata={"help": "Optuna RDB URL ('' = sqlite next to the tracking store)"})

    def learning_rates(self) -> tuple[float, ...] | None:
        """The grid, or None for TPE."""
        if self.sampler == "tpe":
            return None
        if not self.lrs:
            return FINETUNE_MODES.get(self.mode).learning_rates(self.task)
        try:
            values = tuple(float(v) for v in self.lrs.split(","))
        except ValueError:
            values = ()
        if not values or min(values) <= 0:
            raise UsageError(f"lrs={self.lrs!r} is not a comma-separated list of positive learning rates")
        return values

    def validate(self) -> None:
        from forgetting.sweep import check_storage

        check_choice("mode", self.mode, FINETUNE_MODES.names())
        FINETUNE_MODES.get(self.mode).check_task(self.task)
        check_choice("sampler", self.sampler, SAMPLERS)
        self.learning_rates()
        check_range("lr_min", self.lr_min, 0, low_open=True)
        check_range("lr_max", self.lr_max, self.lr_min, low_open=True)
        for name in ("n_trials", "epochs", "batch_size"):
            check_range(name, getattr(self, name), 1)
        for name in ("train_limit", "eval_limit"):
            check_range(name, getattr(self, name), 0)
        check_choice("precision", self.precision, PRECISIONS)
        check_storage(self.storage)

    def params(self) -> dict:
        """The parameters a run logs: the grid spelled out, TPE bounds only for TPE."""
        grid = self.learning_rates()
        shown = {k: v for k, v in vars(self).items()
                 if grid is None or k not in ("n_trials", "lr_min", "lr_max")}
        return shown | {"lrs": ",".join(f"{lr:g}" for lr in grid) if grid else ""}

    @property
    def study(self) -> str | None:
        """A classifier's sweep belongs to the classifiers' study; None: the entry point's (``study_of``)."""
        from forgetting.tracking.studies import classifier_study

        return classifier_study() if FINETUNE_MODES.get(self.mode).classifier else None


def finetune_sweep(config: FinetuneConfig, run) -> dict[str, float]:
    """Inside the active run: baseline accuracy, the sweep's trials as nested runs, the summary."""
    from forgetting.sweep import open_lr_study, pending_grid_values
    from forgetting.tracking.runs import TAG, active_cache_key

    mode = FINETUNE_MODES.get(config.mode).runner_class(config)
    base = mode.load()
    baseline = mode.evaluate(base)
    mlflow.log_metric("baseline_acc", baseline)
    grid = config.learning_rates()
    study = open_lr_study(f"finetune-{active_cache_key()}", config.storage, grid, config.seed)

    def objective(trial) -> float:
        lr = trial.suggest_float("lr", min(grid) if grid else config.lr_min,
                                 max(grid) if grid else config.lr_max, log=True)
        with mlflow.start_run(nested=True, experiment_id=run.info.experiment_id,
                              run_name=f"trial-{trial.number}-lr-{lr:g}",
                              tags={f"{TAG}trial": str(trial.number)}):
            mlflow.log_params({"lr": lr, "task": config.task, "epochs": config.epochs})
            model = copy.deepcopy(base)

            def report(epoch: int, loss: float) -> None:
                mlflow.log_metric("train_loss", loss, step=epoch + 1)
                if epoch + 1 < config.epochs:
                    trial.report(mode.evaluate(model), epoch)
                    if trial.should_prune():
                        import optuna

                        raise optuna.TrialPruned()

            mode.train(model, lr, report)
            score = mode.evaluate(model)
            mlflow.log_metric("accuracy", score)
            mode.keep(trial.number, model, score)
            return score

    todo = len(pending_grid_values(study, grid)) if grid else config.n_trials - len(study.trials)
    if todo > 0:
        study.optimize(objective, n_trials=todo)  # no gc.collect() per trial: a trial's copy is freed by its refcount
    metrics = _log_summary(study, baseline, len(mode.eval_rows))
    return metrics | mode.finish(base, study.best_trial)


def _log_summary(study, baseline: float, n_eval: int) -> dict[str, float]:
    """The sweep's metrics; every accuracy with its Wilson 95% interval over the ``n_eval`` eval rows (the
    best trial's is the interval of that one run, not corrected for picking the best of the sweep)."""
    import optuna

    from forgetting.scoring.intervals import rate

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise RuntimeError("no fine-tuning trial completed")
    best = max(done, key=lambda t: t.value)
    accuracies = {"baseline_acc": baseline, "best_acc": best.value,
                  **{f"accuracy_lr_{t.params['lr']:g}": t.value for t in done}}
    metrics = {"best_lr": best.params["lr"], "n_trials": len(done), "recovered": best.value - baseline,
               "n_eval_rows": n_eval, **{key: value for name, accuracy in accuracies.items() if not math.isnan(accuracy)
                                         for key, value in rate(name, round(accuracy * n_eval), n_eval).items()}}
    metrics = {k: v for k, v in metrics.items() if not math.isnan(v)}
    mlflow.log_metrics(metrics)
    return metrics
