"""Data-parallel training on existing engines: ``torchrun`` starts the processes, accelerate wraps the model.

A stage with ``gpus > 1`` opens its MLflow run as usual (cache, lineage, resume of a killed attempt),
then runs ``torch.distributed.run --standalone`` with one process per GPU (or per CPU core with
``device=cpu``: the gloo backend, which is how CI tests this path) and waits for it. The processes
read their job (the config, the run, the cache key, the resolved model) from the environment;
rank 0 logs to that run and registers checkpoints, the other ranks never touch the tracking store.
Each rank takes its slice of every global batch, so a step of N processes is the step of one
process on the same global batch (DDP averages the gradients).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

from forgetting.device import current
from forgetting.errors import UsageError, check_choice

JOB_VARIABLE = "FORGETTING_DISTRIBUTED_JOB"
# Rank 0 logs and registers checkpoints while the others wait at the next collective.
COLLECTIVE_TIMEOUT = timedelta(hours=2)


class ProcessesFailed(RuntimeError):
    """A torchrun process failed or was killed; the run's local state lets a rerun resume."""


def in_processes(target: str, config, key: str, **job) -> dict[str, float]:
    """``target`` (``"package.module:function"``) run by ``config.gpus`` torchrun processes on the active
    stage run (its ID and cache ``key``, the ``config`` and ``job`` in their job); the metrics rank 0
    logged to the run."""
    from dataclasses import asdict

    import mlflow

    run_id = mlflow.active_run().info.run_id
    run_processes(target, {"config": asdict(config), "run_id": run_id, "key": key, **job}, config.gpus)
    return mlflow.get_run(run_id).data.metrics


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Rank 0 of a torchrun job, or the only process: the one that logs and registers."""
    return rank() == 0


def run_processes(target: str, job: dict, processes: int) -> None:
    """``target(job)`` (``"package.module:function"``) in each of ``processes`` torchrun processes on
    this node; returns when all finished, raises ``ProcessesFailed`` when one did not."""
    environment = {**os.environ, JOB_VARIABLE: json.dumps({"target": target, **job})}
    environment.pop("MLFLOW_RUN_ID", None)  # rank 0 logs to the job's run, never a launcher's
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "forgetting.training.process"]
    sys.stdout.flush()
    exit_code = subprocess.run(command, env=environment).returncode
    if exit_code:
        raise ProcessesFailed(f"{processes} data-parallel processes ended with exit status {exit_code}; "
                              "the same command resumes from the last checkpoint")


def run_job() -> None:
    """Run the job ``run_processes`` handed this process: select its device, attach rank 0 to its run."""
    import importlib

    import mlflow

    from forgetting import device
    from forgetting.tracking import configure

    job = json.loads(os.environ[JOB_VARIABLE])
    config = job["config"]
    device.select(config["device"], config["precision"], config["gpus"])
    process_group()
    configure()
    if is_main():
        mlflow.start_run(run_id=job["run_id"])
    module, _, function = job["target"].partition(":")
    getattr(importlib.import_module(module), function)(job)


def process_mean(value):
    """The mean of a scalar tensor over the processes (itself with one process)."""
    import torch.distributed as dist

    if world_size() > 1:
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.AVG)
    return value


def own_share(rows):
    """This process's rows of a global batch, every N-th from its rank (all of them with one process):
    of a list, a tensor, or each tensor of a batch dict."""
    if isinstance(rows, dict):
        return {name: own_share(values) for name, values in rows.items()}
    return rows[rank()::world_size()]


def average_gradients(model) -> None:
    """Average every gradient over the processes (what DDP does in backward), for a loop whose
    several forward passes per step DDP's wrapper does not allow."""
    import torch.distributed as dist

    if world_size() == 1:
        return
    for parameter in model.parameters():
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad, op=dist.ReduceOp.AVG)


def check_batch(batch_size: int, gpus: int) -> None:
    if batch_size % gpus:
        raise UsageError(f"batch_size={batch_size} must be a multiple of gpus={gpus} (each process takes an "
                         "equal slice of the global batch)")


PARALLEL = ("ddp", "fsdp")


def check_parallel(parallel: str, gpus: int, device_spec: str) -> None:
    from forgetting.device import parse_device

    check_choice("parallel", parallel, PARALLEL)
    if parallel == "fsdp" and (gpus < 2 or parse_device(device_spec).type != "cuda"):
        raise UsageError(f"parallel='fsdp' shards a model over CUDA GPUs: it needs gpus > 1 on device=auto or "
                         f"cuda (here gpus={gpus}, device={device_spec!r} is {parse_device(device_spec)}); "
                         "use parallel=ddp")


def process_group() -> None:
    """Start the process group under torchrun (nccl on GPUs, gloo on CPUs), for loops of our own as for
    accelerate and the trainers built on it."""
    from accelerate import PartialState

    PartialState(cpu=current().device.type == "cpu", timeout=COLLECTIVE_TIMEOUT)


def accelerator(parallel: str = "ddp"):
    """The accelerate ``Accelerator`` of this process: DDP, or FSDP2 wrapping each decoder layer with
    full state dicts. Placement stays with the device policy, precision with ``autocast``."""
    from accelerate import Accelerator, FullyShardedDataParallelPlugin

    process_group()
    fsdp = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap",
                                          state_dict_type="FULL_STATE_DICT") if parallel == "fsdp" else None
    return Accelerator(cpu=current().device.type == "cpu", device_placement=False, fsdp_plugin=fsdp)


def peak_usage(accelerator) -> dict[str, float]:
    """``usage_metrics`` of the busiest process."""
    import torch

    from forgetting.device import usage_metrics

    usage = usage_metrics()
    peaks = accelerator.gather(torch.tensor([list(usage.values())], device=current().device)).amax(dim=0)
    return dict(zip(usage, peaks.tolist()))
