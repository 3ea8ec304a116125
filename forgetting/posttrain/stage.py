"""The ``posttrain`` stage: one post-training method on one domain from one start, registered.

``start=base`` post-trains ``model`` as given; ``start=safe`` names a safety-aligned ``model``,
such as the checkpoint ``domain=safety`` registers (the parameter is the label the analysis groups
by, recorded with the checkpoint). Methods that learn from collected data (their spec's
``collected``; sf-sft, cf-sft: a teacher's correct responses; off-rl: pairs of the policy's own correct
and incorrect responses) take ``data=<collect run ID>``; a same-family teacher (sf-sft) must share the
start model's family (``model_type``) and a cross-family one (cf-sft) must not. The checkpoint is registered as
``<model>-<method>-<domain>`` with alias ``posttrained`` and tags method, domain, start, scale
(parameters).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import mlflow

from forgetting.device import DEVICE_HELP, GPUS_HELP, PRECISIONS
from forgetting.errors import UsageError, check_choice, check_range
from forgetting.models import DEFAULT_MODEL
from forgetting.training.distributed import check_batch

STARTS = ("base", "safe")
BACKENDS = ("local", "cluster")
LAUNCHES = ("here", "sbatch", "dry-run")


@dataclass(frozen=True)
class PosttrainConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "the start model (model spec)"})
    method: str = field(default="gt-sft", metadata={
        "help": "gt-sft, sf-sft, cf-sft, self, on-rl, off-rl, pi or sdft"})
    domain: str = field(default="math", metadata={"help": "math, code, qa or safety (makes the safe start)"})
    start: str = field(default="base", metadata={"help": "base or safe: which start `model` is"})
    backend: str = field(default="local", metadata={"help": "local (TRL on this machine) or cluster (verl on GPUs)"})
    launch: str = field(default="here", metadata={
        "help": "cluster: here (verl on this machine's GPUs), sbatch (submit a job that runs it there) or dry-run"})
    gpus: int = field(default=1, metadata={"help": "local: " + GPUS_HELP + "; cluster: GPUs for verl (one node)"})
    sbatch_options: str = field(default="", metadata={
        "help": "cluster, sbatch: more #SBATCH options, comma-separated (--partition=gpu,--time=04:00:00)"})
    data: str = field(default="", metadata={"help": "collect run ID (sf-sft, cf-sft: the teacher's; off-rl: the policy's)"})
    n: int = field(default=64, metadata={"help": "training prompts (a seeded subset of the domain's train split)"})
    steps: int = field(default=50, metadata={"help": "optimizer steps (self: over all rounds)"})
    lr: float = field(default=1e-5, metadata={"help": "learning rate"})
    batch_size: int = field(default=8, metadata={"help": "sequences per step (on-rl: completions per step)"})
    max_length: int = field(default=512, metadata={"help": "tokens per training sequence"})
    max_new_tokens: int = field(default=256, metadata={"help": "tokens per sampled response (self, on-rl, pi, sdft)"})
    beta: float = field(default=0.1, metadata={"help": "DPO beta (off-rl, self)"})
    kl_coef: float = field(default=0.0, metadata={"help": "on-rl: GRPO beta, the KL to the start model"})
    pi_alpha: float = field(default=0.5, metadata={
        "help": "pi: weight of the teacher objective, 1 - pi_alpha the student's (0.5: the paper's joint training)"})
    pi_beta: float = field(default=1.0, metadata={"help": "pi: weight of the KL between teacher and student"})
    num_generations: int = field(default=4, metadata={
        "help": "on-rl: samples per prompt (the GRPO group); pi: teacher samples per prompt; sdft: student samples"})
    rounds: int = field(default=2, metadata={"help": "self: SPIN rounds"})
    checkpoint_every: int = field(default=25, metadata={"help": "steps between resumable checkpoints"})
    precision: str = field(default="bf16-autocast", metadata={"help": ", ".join(PRECISIONS)})
    device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    seed: int = field(default=0, metadata={"help": "seed of the prompt subset, sampling and data order"})
    register_as: str = field(default="", metadata={"help": "registered model name ('' = derived)"})

    def validate(self) -> None:
        from forgetting.posttrain import POSTTRAIN_METHODS

        self.validate_parameters()
        if (needed := POSTTRAIN_METHODS.get(self.method).collected) and not self.data:
            raise UsageError(f"method={self.method!r} trains on collected {needed} data: give data=<collect run ID>")
        if self.data:
            self.check_collect_run()

    def validate_parameters(self) -> None:
        """Every check but those of ``data`` (a grid checks its jobs before the collect runs exist)."""
        from forgetting.posttrain import POSTTRAIN_METHODS
        from forgetting.rewards.domains import get_domain

        method = POSTTRAIN_METHODS.get(self.method)
        get_domain(self.domain)
        check_choice("start", self.start, STARTS)
        check_choice("backend", self.backend, BACKENDS)
        check_choice("launch", self.launch, LAUNCHES)
        check_range("gpus", self.gpus, 1)
        if self.backend == "local":
            check_batch(self.batch_size, self.gpus)
        if self.backend == "cluster":
            self.check_cluster()
        check_choice("precision", self.precision, PRECISIONS)
        for name in ("n", "steps", "batch_size", "max_length", "max_new_tokens", "rounds", "checkpoint_every"):
            check_range(name, getattr(self, name), 1)
        check_range("num_generations", self.num_generations, 2)
        check_range("lr", self.lr, 0, low_open=True)
        check_range("beta", self.beta, 0, low_open=True)
        check_range("kl_coef", self.kl_coef, 0)
        check_range("pi_alpha", self.pi_alpha, 0, 1)
        check_range("pi_beta", self.pi_beta, 0)
        if method.grouped and self.batch_size % self.num_generations:
            raise UsageError(f"batch_size={self.batch_size} must be a multiple of num_generations="
                             f"{self.num_generations} ({self.method} samples whole groups per step)")
        if not method.collected and self.data:
            raise UsageError(f"method={self.method!r} builds its own data; data={self.data!r} would be ignored")

    def check_cluster(self) -> None:
        import importlib.util

        from forgetting.posttrain.verl import check_cluster_method, verl_config_dir

        check_cluster_method(self.method)
        verl_config_dir()
        if self.launch == "sbatch":
            from forgetting.tracking.store import tracking_uri

            if shutil.which("sbatch") is None:
                raise UsageError("launch='sbatch' needs Slurm's sbatch on PATH; use launch=dry-run to see the script")
            if not tracking_uri().startswith(("http://", "https://")):
                raise UsageError(f"launch='sbatch' needs MLFLOW_TRACKING_URI to be a tracking server the GPU node "
                                 f"can reach, not {tracking_uri()!r}")
        if self.launch == "here":
            import torch

            if not torch.cuda.is_available() or importlib.util.find_spec("ray") is None:
                raise UsageError("backend=cluster launch='here' needs CUDA GPUs and verl's dependencies (ray, vLLM) "
                                 "on this machine; use launch=sbatch or launch=dry-run")

    def check_collect_run(self) -> None:
        from forgetting.models import resolve_model
        from forgetting.posttrain import POSTTRAIN_METHODS

        method = POSTTRAIN_METHODS.get(self.method)
        try:
            run = mlflow.get_run(self.data)
        except Exception as error:
            raise UsageError(f"data={self.data!r} is not a run ID of this tracking store") from error
        if run.data.tags.get("forgetting.entry_point") != "collect" or run.info.status != "FINISHED":
            raise UsageError(f"data={self.data!r} is not a FINISHED collect run")
        if run.data.params.get("domain") != self.domain:
            raise UsageError(f"data={self.data!r} collected domain {run.data.params.get('domain')!r}, "
                             f"not domain={self.domain!r}")
        count = {"sft": "n_sft", "preferences": "n_pairs"}[method.collected]
        if not run.data.metrics.get(count):
            raise UsageError(f"data={self.data!r} holds no {method.collected} rows to learn from "
                             f"({count} = 0: the collected model solved none, or all, of its prompts)")
        if method.teacher in ("same-family", "cross-family"):
            same_family = method.teacher == "same-family"
            teacher, start = (model_type(resolve_model(spec)) for spec in (run.data.params["model"], self.model))
            if (teacher == start) != same_family:
                family = "the same" if same_family else "another"
                raise UsageError(f"method={self.method!r} needs a teacher of {family} family: data={self.data!r} "
                                 f"was collected from a {teacher} model and the start model is a {start} model")

    def model_name(self) -> str:
        from forgetting.tracking.checkpoints import registered_name

        return self.register_as or f"{registered_name(self.model)}-{self.method}-{self.domain}"


def model_type(location: str) -> str:
    path = Path(location) / "config.json"
    return json.loads(path.read_text())["model_type"] if path.is_file() else location


def posttrain(config: PosttrainConfig) -> dict[str, float]:
    """Inside the active run: load the start model, run the method, register the result; with
    ``gpus > 1`` on the local backend the method runs data-parallel in that many torchrun processes."""
    from forgetting.tracking.runs import active_cache_key
    from forgetting.training.distributed import in_processes

    if config.backend == "local" and config.gpus > 1:
        return in_processes("forgetting.posttrain.stage:posttrain_process", config, active_cache_key())
    return train_and_register(config, active_cache_key())


def posttrain_process(job: dict) -> None:
    """One torchrun process of a data-parallel ``posttrain``."""
    train_and_register(PosttrainConfig(**job["config"]), job["key"])


def train_and_register(config: PosttrainConfig, key: str) -> dict[str, float]:
    """Train with the method (every process of a data-parallel job); rank 0 logs and registers."""
    from forgetting.models import load_model
    from forgetting.posttrain import POSTTRAIN_METHODS
    from forgetting.posttrain.collect import collected
    from forgetting.posttrain.data import MethodData
    from forgetting.models.weights import count_parameters
    from forgetting.rewards.domains import get_domain
    from forgetting.tracking import home
    from forgetting.training.distributed import is_main

    domain = get_domain(config.domain)
    method = POSTTRAIN_METHODS.get(config.method)
    collected_rows = collected(config.data, method.collected) if method.collected else None
    work_dir = home() / "resume" / key
    if config.backend == "cluster":
        from forgetting.posttrain.cluster import train_with_verl

        data = MethodData(domain, domain.rows("train", config.seed, config.n), collected_rows)
        model, tokenizer, metrics = train_with_verl(data, config)
    else:
        model, tokenizer = load_model(config.model)
        if collected_rows:
            collected_rows = [row | {"prompt": domain.frame(row["prompt"], tokenizer)} for row in collected_rows]
        data = MethodData(domain, domain.rows("train", config.seed, config.n, tokenizer), collected_rows)
        metrics = method.train(model, tokenizer, data, config, work_dir)
    parameters = count_parameters(model)
    metrics = {name: value for name, value in metrics.items() if name != "objective"} | {"parameters": parameters}
    if is_main():
        _register(model, tokenizer, config, metrics, key)
        shutil.rmtree(work_dir, ignore_errors=True)
    return metrics


def _register(model, tokenizer, config: PosttrainConfig, metrics: dict[str, float], key: str) -> None:
    from forgetting.tracking.checkpoints import log_model

    mlflow.log_metrics(metrics)
    log_model(model, tokenizer, register_as=config.model_name(), alias="posttrained", version_key=key,
              tags={"stage": "posttrain", "method": config.method,
                    "domain": config.domain, "start": config.start, "scale": metrics["parameters"],
                    "start_model": config.model, "step": config.steps})
