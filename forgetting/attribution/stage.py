"""The ``attribute`` stage: score training data with UnTrac, UnTrac-Inv and/or TracIn in one run.

With ``train_data=planted`` (and ``test_data=planted``) the stage first fine-tunes a copy of the
model on the planted-source mixture (``forgetting.attribution.planted``), keeping checkpoints for
TracIn, then attributes; the planted source's rank under each method is the check. With JSONL
files (``{"source", "text"}`` per training line, ``{"prompt", "completion"}`` per test line) the
given model is attributed as it is, TracIn using the model itself as its one checkpoint.

Logged: per method ``rank_<method>`` (of ``responsible``, when given), ``runtime_s_<method>``, the
tables ``attribution/<method>_sources.json`` and ``attribution/<method>_examples.json``, the top-k
examples ``attribution/<method>_top.json``; ``spearman_<a>_vs_<b>`` between methods' per-source
scores; ``peak_rss_mb`` of the process.
"""
from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import mlflow

from forgetting.errors import UsageError, check_choice, check_range
from forgetting.models import DEFAULT_MODEL
from forgetting.models.precision import PRECISIONS

METHOD_CHOICES = ("untrac", "untrac-inv", "tracin", "all")


@dataclass(frozen=True)
class AttributeConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "model spec (see README: Models)"})
    method: str = field(default="all", metadata={"help": "untrac, untrac-inv, tracin or all"})
    train_data: str = field(default="planted", metadata={
        "help": "planted (the planted-source mixture) or a JSONL file of {source, text}"})
    test_data: str = field(default="planted", metadata={
        "help": "planted or a JSONL file of {prompt, completion}: the behaviour to explain"})
    responsible: str = field(default="planted", metadata={
        "help": "the source expected to rank first ('' = none); its rank is logged"})
    examples_per_source: int = field(default=16, metadata={"help": "planted: examples of each real source"})
    planted_facts: int = field(default=16, metadata={"help": "planted: counterfactual facts planted and tested"})
    train_steps: int = field(default=30, metadata={"help": "planted: fine-tuning steps on the mixture"})
    train_lr: float = field(default=1e-4, metadata={"help": "planted: fine-tuning learning rate (TracIn's lr)"})
    checkpoints: int = field(default=3, metadata={"help": "planted: checkpoints kept for TracIn"})
    unlearning_rate: float = field(default=5e-5, metadata={"help": "UnTrac/UnTrac-Inv gradient-ascent learning rate"})
    unlearning_steps: int = field(default=5, metadata={"help": "UnTrac/UnTrac-Inv gradient-ascent steps"})
    batch_size: int = field(default=8, metadata={"help": "examples per batch"})
    max_length: int = field(default=128, metadata={"help": "tokens kept per example"})
    top_k: int = field(default=10, metadata={"help": "examples listed in the top-k table"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory when unlearning"})
    tracin_parameters: str = field(default="", metadata={
        "help": "TracIn: only parameters whose name contains this ('' = all)"})
    precision: str = field(default="fp32", metadata={"help": ", ".join(PRECISIONS) + " (mixture training)"})
    seed: int = field(default=0, metadata={"help": "seed of the mixture, its training and the splits"})

    def validate(self) -> None:
        check_choice("method", self.method, METHOD_CHOICES)
        check_choice("precision", self.precision, PRECISIONS)
        check_range("unlearning_rate", self.unlearning_rate, 0, low_open=True)
        check_range("train_lr", self.train_lr, 0, low_open=True)
        for name in ("unlearning_steps", "batch_size", "top_k", "examples_per_source", "planted_facts",
                     "train_steps", "checkpoints", "max_length"):
            check_range(name, getattr(self, name), 1)
        if (self.train_data == "planted") != (self.test_data == "planted"):
            raise UsageError("train_data and test_data must both be 'planted' or both JSONL files")
        if self.train_data != "planted":
            read_jsonl(self.train_data, "train_data", ("source", "text"))
            read_jsonl(self.test_data, "test_data", ("prompt", "completion"))

    def methods(self) -> list[str]:
        return ["untrac", "untrac-inv", "tracin"] if self.method == "all" else [self.method]


def read_jsonl(path: str, parameter: str, keys: tuple[str, ...]) -> list[dict]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise UsageError(f"{parameter}={path!r} is neither 'planted' nor a JSONL file")
    rows = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise UsageError(f"{parameter}={path!r}: line {number} is not JSON ({error.msg})") from error
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in keys):
            raise UsageError(f"{parameter}={path!r}: line {number} needs string fields {', '.join(keys)}")
        rows.append(row)
    if not rows:
        raise UsageError(f"{parameter}={path!r} has no examples")
    return rows


def attribute(config: AttributeConfig) -> dict[str, float]:
    """Inside the active run: build the data, (planted) train a copy, run each method, log."""
    import copy

    import pandas as pd

    from forgetting.attribution import ATTRIBUTION_METHODS
    from forgetting.attribution.examples import encode_examples
    from forgetting.attribution.methods import Budget
    from forgetting.attribution.planted import planted_mixture, train_on_mixture
    from forgetting.models import load_model

    model, tokenizer = load_model(config.model)
    if config.train_data == "planted":
        train_rows, test_rows = planted_mixture(config.examples_per_source, config.planted_facts, config.seed)
    else:
        train_rows = read_jsonl(config.train_data, "train_data", ("source", "text"))
        test_rows = read_jsonl(config.test_data, "test_data", ("prompt", "completion"))
    train = encode_examples(tokenizer, train_rows, config.max_length)
    test = encode_examples(tokenizer, test_rows, config.max_length)
    sources = [row["source"] for row in train_rows]
    checkpoints = None
    if config.train_data == "planted":
        model = copy.deepcopy(model)
        checkpoints = train_on_mixture(model, train, config.train_steps, config.train_lr, config.batch_size,
                                       config.checkpoints, config.seed, config.precision)
    budget = Budget(config.unlearning_rate, config.unlearning_steps, config.batch_size, config.gradient_checkpointing)
    metrics, per_source = {"n_train_examples": len(train_rows), "n_test_examples": len(test_rows)}, {}
    for method in config.methods():
        started = time.perf_counter()
        result = ATTRIBUTION_METHODS.get(method)(model, train, sources, test, budget, checkpoints=checkpoints,
                                                 parameters=config.tracin_parameters)
        metrics[f"runtime_s_{method}"] = time.perf_counter() - started
        ranked = result.per_source.sort_values("score", ascending=False, ignore_index=True)
        per_source[method] = ranked.set_index("source")["score"]
        if config.responsible in set(ranked["source"]):
            metrics[f"rank_{method}"] = int(ranked.index[ranked["source"] == config.responsible][0]) + 1
        mlflow.log_table(ranked, artifact_file=f"attribution/{method}_sources.json")
        if result.per_example is not None:
            examples = result.per_example.assign(text=[row["text"][:200] for row in train_rows])
            mlflow.log_table(examples, artifact_file=f"attribution/{method}_examples.json")
            top = examples.sort_values("score", ascending=False).head(config.top_k)
            mlflow.log_table(top, artifact_file=f"attribution/{method}_top.json")
    for a, b in combinations(per_source, 2):
        metrics[f"spearman_{a}_vs_{b}"] = float(pd.concat([per_source[a], per_source[b]], axis=1)
                                                .corr(method="spearman").iloc[0, 1])
    metrics["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mlflow.log_metrics(metrics)
    return metrics
