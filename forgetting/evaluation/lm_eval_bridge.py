"""Run lm-evaluation-harness offline over the project's own rows.

lm-eval reads a task YAML whose ``dataset_path: json`` points at absolute local files, so the
same real rows that ``forgetting.data`` loads are written once as JSONL beside a generated YAML
and evaluated with lm-eval's HF backend on the CPU (``device="cpu"``): no hub access.
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
    "target_delimiter": "",  # the project's choices carry their own leading space
    "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                    {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
}


def write_multiple_choice_task(name: str, rows, directory: str | Path) -> str:
    """Write ``rows`` (multiple-choice schema) and an lm-eval task YAML; return the lm-eval task name."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    task_name = f"forgetting_{name}"
    data_file = directory / f"{task_name}.jsonl"
    with data_file.open("w") as handle:
        for row in rows:
            handle.write(json.dumps({"id": row["id"], "prompt": row["prompt"],
                                     "choices": list(row["choices"]), "label": int(row["label"])}) + "\n")
    config = {"task": task_name, "dataset_path": "json",
              "dataset_kwargs": {"data_files": {"test": str(data_file)}}, **MULTIPLE_CHOICE_TEMPLATE}
    (directory / f"{task_name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return task_name


def run_lm_eval(model_dir: str, task_dir: str | Path, tasks: list[str], batch_size: int = 16,
                log_samples: bool = False) -> dict:
    """``lm_eval.simple_evaluate`` with the HF backend on CPU over generated local tasks."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(
        model="hf", model_args={"pretrained": str(model_dir), "dtype": "float32"}, tasks=tasks,
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
        device="cpu", batch_size=batch_size, log_samples=log_samples, bootstrap_iters=0)
