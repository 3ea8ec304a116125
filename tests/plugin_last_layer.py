"""A fine-tune mode written as a user would add one: this file plus one registration line.

``last-layer`` trains only the last decoder layer of a causal LM on prompt + correct choice (the
``answer`` mode's data and scoring), so its default grid is higher than full fine-tuning's. It takes
only ARC-Easy and CounterFact, only so that the test can see a mode's own task check reach ``validate``.
"""
import mlflow

from forgetting.errors import check_choice
from forgetting.training.finetune import AnswerFinetuning


def check_task(task: str) -> None:
    check_choice("task", task, ("arc_easy", "counterfact"))


def learning_rates(task: str) -> tuple[float, ...]:
    return (1e-4, 1e-3)


class LastLayerFinetuning(AnswerFinetuning):
    def train(self, model, lr: float, after_epoch) -> None:
        last = model.base_model.layers[-1]
        model.requires_grad_(False)
        last.requires_grad_(True)
        mlflow.log_metric("trained_fraction", sum(p.numel() for p in last.parameters())
                          / sum(p.numel() for p in model.parameters()))
        super().train(model, lr, after_epoch)
