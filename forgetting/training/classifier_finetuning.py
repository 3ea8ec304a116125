"""The ``classification`` fine-tuning mode: a sequence classifier per trial, the best one registered
with the movement and gradient statistics the selective study's pruning criteria read."""
from __future__ import annotations

import copy

import mlflow

from forgetting.data.classification import CLASSIFICATION_LABELS, classification_rows

CLASSIFIER_LRS = (2e-5, 5e-5, 1e-4)


def classifier_learning_rates(task: str) -> tuple[float, ...]:
    """One grid for every classification task."""
    return CLASSIFIER_LRS


class ClassifierFinetuning:
    def __init__(self, config):
        from forgetting.data import log_dataset

        self.config = config
        self.train_rows = classification_rows(config.task, "train", config.seed, config.train_limit)
        self.eval_rows = classification_rows(config.task, "eval", config.seed, config.eval_limit)
        log_dataset(self.train_rows, config.task, "train", context="train")
        log_dataset(self.eval_rows, config.task, "eval")
        self.best = None  # (trial, score, model, statistics)
        self.statistics = None

    def load(self):
        from forgetting.scoring.classification import majority_accuracy
        from forgetting.models.classifier import load_classifier

        model, self.tokenizer = load_classifier(self.config.model, CLASSIFICATION_LABELS[self.config.task],
                                                self.config.seed)
        mlflow.log_metric("majority_acc", majority_accuracy(self.train_rows, self.eval_rows))
        return model

    def evaluate(self, model) -> float:
        return self.metrics(model)["accuracy"]

    def metrics(self, model) -> dict[str, float]:
        from forgetting.scoring.classification import score_classifier

        return score_classifier(model, self.tokenizer, self.eval_rows, self.config.batch_size, self.config.precision)

    def train(self, model, lr: float, after_epoch) -> None:
        from forgetting.training.classifier import train_classifier  # transformers: not at validation

        config = self.config
        per_epoch = -(-len(self.train_rows) // config.batch_size)
        losses: list[float] = []

        def on_step(step: int, loss: float) -> None:
            losses.append(loss)
            if step % per_epoch == 0:
                after_epoch(step // per_epoch - 1, sum(losses[-per_epoch:]) / per_epoch)

        result = train_classifier(model, self.tokenizer, self.train_rows, lr=lr, epochs=config.epochs,
                                  batch_size=config.batch_size, precision=config.precision, seed=config.seed,
                                  record_statistics=True, on_step=on_step)
        self.statistics = result.statistics

    def keep(self, trial: int, model, score: float) -> None:
        if self.best is None or score > self.best[1]:
            self.best = (trial, score, model, self.statistics)

    def finish(self, base, best_trial) -> dict[str, float]:
        """Register the best trial's classifier; after a resumed sweep whose best trial ran in the
        killed attempt, that trial is trained again from the same seed."""
        from forgetting.tracking.checkpoints import log_model, registered_name
        from forgetting.tracking.runs import active_cache_key

        if self.best is not None and self.best[0] == best_trial.number:
            model, statistics = self.best[2], self.best[3]
        else:
            model = copy.deepcopy(base)
            self.train(model, best_trial.params["lr"], lambda *_: None)
            statistics = self.statistics
        metrics = {f"best_{name}": value for name, value in self.metrics(model).items() if name != "accuracy"}
        mlflow.log_metrics(metrics)
        log_model(model, self.tokenizer, add_files=statistics.save,
                  register_as=f"{registered_name(self.config.model)}-{self.config.task}-classifier",
                  alias="finetuned", version_key=active_cache_key(),
                  tags={"stage": "finetune", "task": self.config.task, "method": "none",
                        "sparsity": 0.0, "step": 0, "lr": best_trial.params["lr"]})
        return metrics
