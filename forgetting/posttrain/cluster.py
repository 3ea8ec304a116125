"""``posttrain -P backend=cluster``: render the verl job, and run it here, submit it, or print it.

``launch=sbatch`` submits a one-node job that runs this same stage with ``launch=here`` through
``mlflow run`` against the tracking server, so the run, its metrics and the registered checkpoint
land where a local run's would; ``launch=dry-run`` prints the verl command and the job script.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path

import mlflow

from forgetting.backends.commands import mlflow_run_arguments, stage_parameters
from forgetting.posttrain.verl import OBJECTIVES, check_overrides, hf_checkpoint, verl_job, write_training_data
from forgetting.tracking.store import PROJECT_ROOT, home, tracking_uri


def job_folder(config) -> Path:
    return home() / "verl" / f"{config.method}-{config.domain}-{config.start}-seed{config.seed}"


def render(config, folder: Path):
    from forgetting.models import resolve_model

    job = verl_job(config, resolve_model(config.model), folder / "train.parquet", folder / "checkpoints", config.gpus)
    check_overrides(job)
    return job


def sbatch_script(config) -> str:
    here = replace(config, launch="here")
    options = [f"--job-name=posttrain-{config.method}-{config.domain}", "--nodes=1", f"--gres=gpu:{config.gpus}",
               *filter(None, (option.strip() for option in config.sbatch_options.split(",")))]
    command = shlex.join(mlflow_run_arguments("posttrain", stage_parameters(here), "forgetting"))
    return "\n".join(["#!/bin/bash", *(f"#SBATCH {option}" for option in options), "set -euo pipefail",
                      f"export MLFLOW_TRACKING_URI={shlex.quote(tracking_uri())}", f"cd {shlex.quote(str(PROJECT_ROOT))}",
                      f"source {shlex.quote(str(PROJECT_ROOT / '.venv' / 'bin' / 'activate'))}", command, ""])


def dry_run(config) -> str:
    job = render(config, job_folder(config))
    return (f"# verl {job.trainer} job ({job.config_name}, overrides checked against verl's configs)\n{job.shell()}\n\n"
            f"# launch=sbatch submits:\n{sbatch_script(config)}")


def submit(config) -> str:
    folder = job_folder(config)
    render(config, folder)
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "posttrain.sbatch"
    script.write_text(sbatch_script(config), encoding="utf-8")
    return subprocess.run(["sbatch", "--parsable", str(script)], check=True, capture_output=True, text=True).stdout.strip()


def train_with_verl(data, config) -> tuple[object, object, dict]:
    """Inside the active run: write the data, run verl on this machine, load what it saved."""
    from forgetting.models import load_model

    folder = job_folder(config)
    job = render(config, folder)
    write_training_data(job.trainer, data, folder / "train.parquet")
    mlflow.log_text(job.shell() + "\n", "verl/command.sh")
    run_id = mlflow.active_run().info.run_id
    environment = os.environ | {"MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_URI": tracking_uri()}
    subprocess.run(job.command(), check=True, env=environment, cwd=folder)
    metric, higher_is_better = OBJECTIVES[job.trainer]
    values = [m.value for m in mlflow.MlflowClient().get_metric_history(run_id, metric)]
    from forgetting.posttrain.trl_methods import objective_summary

    model, tokenizer = load_model(str(hf_checkpoint(folder / "checkpoints")))
    return model, tokenizer, objective_summary(values, metric, higher_is_better)
