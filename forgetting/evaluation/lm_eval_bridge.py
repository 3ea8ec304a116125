"""Run lm-evaluation-harness offline over the project's own rows.

lm-eval reads a task YAML whose ``dataset_path: json`` points at absolute local files, so the
same real rows that ``forgetting.data`` loads are written once as JSONL beside a generated YAML
and evaluated with the lm-eval backend of the chosen engine (``Engine.lm_eval`` in
``forgetting.scoring.engines``: HF on the device policy's device, or vLLM): no hub access.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

MULTIPLE_CHOICE_TEMPLATE = {
    "output_type": "multiple_choice",
    "test_split": "test",
    "doc_to_text": "{{prompt}}",
    "doc_to_choice": "{{choices}}",
    "doc_to_target": "{{label}}",
    "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                    {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
}


def write_multiple_choice_task(name: str, rows, directory: str | Path) -> str:
    """Write ``rows`` (multiple-choice schema) and an lm-eval task YAML; return the lm-eval task name."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    task_name = f"forgetting_{name}"
    data_file = directory / f"{task_name}.jsonl"
    # lm-eval joins context and choice with the task's target delimiter, and its acc_norm divides by the
    # choice without it: the project's choices carry the space, so it moves to the delimiter.
    spaced = all(choice.startswith(" ") for row in rows for choice in row["choices"])
    with data_file.open("w") as handle:
        for row in rows:
            choices = [choice[1:] if spaced else choice for choice in row["choices"]]
            handle.write(json.dumps({"id": row["id"], "prompt": row["prompt"], "choices": choices,
                                     "label": int(row["label"])}) + "\n")
    config = {"task": task_name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data_file)}},
              **MULTIPLE_CHOICE_TEMPLATE, "target_delimiter": " " if spaced else ""}
    (directory / f"{task_name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return task_name


def run_lm_eval(model_dir: str, task_dir: str | Path, tasks: list[str], batch_size: int | str = 16,
                log_samples: bool = False, engine: str = "hf", precision: str | None = None) -> dict:
    """``lm_eval.simple_evaluate`` over generated local tasks with ``engine``'s backend (``Engine.lm_eval``);
    ``batch_size`` may be lm-eval's ``"auto"``."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from forgetting.scoring.engines import ENGINES

    return lm_eval.simple_evaluate(
        **ENGINES.get(engine).lm_eval(model_dir, precision), tasks=tasks,
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
        batch_size=batch_size, log_samples=log_samples, bootstrap_iters=0)
