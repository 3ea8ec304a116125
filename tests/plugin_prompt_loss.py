"""An evaluation suite written as a user would add one: this file plus one registration line.

``prompt-loss`` is the model's mean next-token loss on the prompts of a task (its ``task``, ``split``
and ``limit``), with the normal 95% interval over prompts.
"""
import mlflow
import torch

def check_prompt_loss(config) -> None:
    from forgetting.data import check_task

    check_task(config.task, config.split, config.seed, config.limit or None)


def evaluate_prompt_loss(config) -> dict[str, float]:
    from forgetting.data import load_task
    from forgetting.scoring.intervals import mean
    from forgetting.models import load_model

    model, tokenizer = load_model(config.model)
    losses = []
    with torch.no_grad():
        for row in load_task(config.task, config.split, seed=config.seed, limit=config.limit or None):
            ids = tokenizer(row["prompt"], return_tensors="pt").input_ids.to(model.device)
            losses.append(float(model(ids, labels=ids).loss))
    metrics = mean("prompt_loss", losses) | {"n_rows": len(losses)}
    mlflow.log_metrics(metrics)
    return metrics


def prompt_loss_summary(config, metrics: dict) -> str:
    from forgetting.scoring.intervals import interval_text

    return (f"{config.task} prompts: loss {metrics['prompt_loss']:.3f} {interval_text(metrics, 'prompt_loss')} "
            f"on {int(metrics['n_rows'])} rows")
