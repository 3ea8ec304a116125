"""Fine-tuning on a multiple-choice task: each prompt followed by its correct choice, loss on the
choice tokens only (tokenised the way the evaluation scores them).

A small loop rather than TRL's SFTTrainer: it is the loop continued training uses, and building
a Trainer per Optuna trial costs more than a CPU trial's training.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch

from forgetting.errors import check_choice
from forgetting.scoring.multiple_choice import encode_pair

IGNORE = -100
PUBLISHED_LRS = {"counterfact": (1e-6, 5e-6, 1e-5, 5e-5, 1e-4)}
DEFAULT_LRS = (1e-6, 5e-6, 1e-5, 2e-5, 5e-5)  # ARC's list, for every other multiple-choice task


def check_answer_task(task: str) -> None:
    """A multiple-choice task (the ``answer`` mode trains on its correct choices)."""
    from forgetting.data import task_kind, task_names

    check_choice("task", task, [t for t in task_names() if task_kind(t) == "multiple_choice"])


def answer_learning_rates(task: str) -> tuple[float, ...]:
    """The task's published grid, else ARC's."""
    return PUBLISHED_LRS.get(task, DEFAULT_LRS)


def answer_examples(tokenizer, rows) -> list[tuple[list[int], list[int]]]:
    return [encode_pair(tokenizer, row["prompt"], row["choices"][row["label"]]) for row in rows]


def answer_batches(examples, batch_size: int, pad_id: int, generator: torch.Generator) -> Iterator[dict]:
    """Right-padded batches in a seeded order; labels are -100 outside the answer."""
    order = torch.randperm(len(examples), generator=generator).tolist()
    for start in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[start:start + batch_size]]
        width = max(len(context) + len(answer) for context, answer in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full_like(ids, IGNORE)
        mask = torch.zeros_like(ids)
        for row, (context, answer) in enumerate(chunk):
            length = len(context) + len(answer)
            ids[row, :length] = torch.tensor(context + answer)
            labels[row, len(context):length] = torch.tensor(answer)
            mask[row, :length] = 1
        yield {"input_ids": ids, "attention_mask": mask, "labels": labels}


def answer_loss(model, batch: dict) -> torch.Tensor:
    """The causal-LM loss of ``batch``'s labelled (answer) tokens, the same value as the model's own loss, with
    the output head run only at the positions that predict them: an answer is a few tokens of each row, and the
    head's logits over the whole vocabulary at every position made a fine-tuning step 12% slower."""
    labels = batch["labels"][:, 1:]
    scored = labels != IGNORE
    hidden = model.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    logits = model.get_output_embeddings()(hidden[:, :-1][scored])
    if softcap := getattr(model.config, "final_logit_softcapping", None):
        logits = torch.tanh(logits / softcap) * softcap
    return torch.nn.functional.cross_entropy(logits.float(), labels[scored])


def finetune_on_answers(model, tokenizer, rows, lr: float, epochs: int = 1, batch_size: int = 8,
                        precision: str = "fp32", seed: int = 0,
                        after_epoch: Callable[[int, float], None] | None = None) -> float:
    """Train ``model`` in place; ``after_epoch(epoch, mean loss)`` runs after each epoch (for
    intermediate evaluation and pruning). Returns the last epoch's mean loss."""
    from forgetting.training.optimizer import adamw_with_warmup, optimizer_step  # transformers: not at validation

    examples = answer_examples(tokenizer, rows)
    optimizer, scheduler = adamw_with_warmup(model, lr, epochs * math.ceil(len(examples) / batch_size))
    generator = torch.Generator().manual_seed(seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    mean_loss = math.nan
    for epoch in range(epochs):
        losses = [optimizer_step(model, batch, optimizer, scheduler, precision, loss_of=answer_loss)
                  for batch in answer_batches(examples, batch_size, pad_id, generator)]
        mean_loss = sum(losses) / len(losses)
        if after_epoch:
            after_epoch(epoch, mean_loss)
    return mean_loss


class AnswerFinetuning:
    """The ``answer`` fine-tuning mode: a causal LM trained on prompt + correct choice, scored by
    multiple-choice accuracy; nothing is registered (the sweep's accuracies are the result)."""

    def __init__(self, config):
        from forgetting.data import load_task, log_dataset

        self.config = config
        self.train_rows = load_task(config.task, "train", seed=config.seed, limit=config.train_limit or None)
        self.eval_rows = load_task(config.task, "eval", seed=config.seed, limit=config.eval_limit or None)
        log_dataset(self.train_rows, config.task, "train", context="train")
        log_dataset(self.eval_rows, config.task, "eval")

    def load(self):
        from forgetting.models import load_model

        model, self.tokenizer = load_model(self.config.model)
        return model

    def evaluate(self, model) -> float:
        from forgetting.scoring.multiple_choice import accuracy, score_multiple_choice

        return accuracy(score_multiple_choice(model, self.tokenizer, self.eval_rows, self.config.batch_size,
                                              self.config.precision)[0])

    def train(self, model, lr: float, after_epoch) -> None:
        config = self.config
        finetune_on_answers(model, self.tokenizer, self.train_rows, lr, config.epochs, config.batch_size,
                            config.precision, config.seed, after_epoch=after_epoch)

    def keep(self, trial: int, model, score: float) -> None:
        """Trial models are not kept."""

    def finish(self, base, best_trial) -> dict[str, float]:
        return {}
