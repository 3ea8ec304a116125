"""The ``attribute`` stage: score training data with UnTrac, UnTrac-Inv and/or TracIn in one run.

With a named experiment (``train_data`` = ``test_data`` = ``planted`` or ``toxicity``, see
``forgetting.attribution.MIXTURES``) the stage first fine-tunes a copy of the model on the
experiment's mixture, keeping checkpoints for the methods that read them (TracIn), then
attributes; the responsible source's rank under each method is the check, and
``leave_dataset_out`` adds the measured ground truth (one retraining per source). With JSONL files
(``{"source", "text"}`` per training line, ``{"prompt", "completion"}`` per test line) the given
model is attributed as it is, TracIn using the model itself as its one checkpoint. Each method's
options come from its ``AttributionMethod`` record; the run's parameters (its cache key,
``AttributeConfig.params``) are the common fields and those of the selected methods.

Logged: per method ``rank_<method>`` (of the responsible source), ``runtime_s_<method>``, the
tables ``attribution/<method>_sources.json`` and ``attribution/<method>_examples.json``, the top-k
examples ``attribution/<method>_top.json``; ``spearman_<a>_vs_<b>`` and ``pearson_<a>_vs_<b>``
between methods' per-source scores (``leave-dataset-out`` among them). ``peak_rss_mb`` and
``peak_gpu_memory_mb`` are logged for the whole run by ``run_stage``, after the body.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

import mlflow

from forgetting.attribution import ATTRIBUTION_METHODS, MIXTURES
from forgetting.device import DEVICE_HELP, PRECISIONS
from forgetting.errors import UsageError, check_choice, check_range
from forgetting.models import DEFAULT_MODEL

GROUND_TRUTH = "leave-dataset-out"
# What the stage itself reads, whichever methods run; ``checkpoints`` is read for the methods that need
# them, and every other field is some method's own (``AttributionMethod.fields``).
COMMON_FIELDS = ("model", "method", "train_data", "test_data", "responsible", "examples_per_source",
                 "test_examples", "train_steps", "train_lr", "leave_dataset_out", "batch_size", "max_length",
                 "top_k", "precision", "device", "seed")


@dataclass(frozen=True)
class AttributeConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "model spec (see README: Models)"})
    method: str = field(default="all", metadata={
        "help": f"{', '.join(ATTRIBUTION_METHODS.in_registration_order())}, a comma-separated list, or all"})
    train_data: str = field(default="planted", metadata={
        "help": "an experiment (planted, toxicity) or a JSONL file of {source, text}"})
    test_data: str = field(default="planted", metadata={
        "help": "the same experiment name, or a JSONL file of {prompt, completion}: the behaviour to explain"})
    responsible: str = field(default="", metadata={
        "help": "the source expected to rank first; its rank is logged ('' = the experiment's own, none for JSONL)"})
    examples_per_source: int = field(default=16, metadata={"help": "experiment: training examples of each source"})
    test_examples: int = field(default=16, metadata={
        "help": "experiment: test examples (planted: the counterfactual facts planted and asked)"})
    train_steps: int = field(default=30, metadata={"help": "experiment: fine-tuning steps on the mixture"})
    train_lr: float = field(default=1e-4, metadata={"help": "experiment: fine-tuning learning rate (TracIn's lr)"})
    checkpoints: int = field(default=3, metadata={
        "help": "experiment: checkpoints kept for the methods that read them (TracIn)"})
    leave_dataset_out: bool = field(default=False, metadata={
        "help": "experiment: also retrain without each source (the ground truth; one training per source)"})
    unlearning_rate: float = field(default=5e-5, metadata={
        "help": "UnTrac/UnTrac-Inv gradient-ascent learning rate; on JSONL data also TracIn's lr for the model itself"})
    unlearning_steps: int = field(default=5, metadata={"help": "UnTrac/UnTrac-Inv gradient-ascent steps"})
    batch_size: int = field(default=8, metadata={"help": "examples per batch"})
    max_length: int = field(default=128, metadata={"help": "tokens kept per example"})
    top_k: int = field(default=10, metadata={"help": "examples listed in the top-k table"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory when unlearning"})
    tracin_parameters: str = field(default="", metadata={
        "help": "TracIn: only parameters whose name contains this ('' = all)"})
    precision: str = field(default="fp32", metadata={"help": ", ".join(PRECISIONS)})
    device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    seed: int = field(default=0, metadata={"help": "seed of the mixture, its training and the splits"})

    def validate(self) -> None:
        if self.method != "all":
            for method in self.methods() or [self.method]:
                check_choice("method", method, ATTRIBUTION_METHODS.names())
        check_choice("precision", self.precision, PRECISIONS)
        check_range("unlearning_rate", self.unlearning_rate, 0, low_open=True)
        check_range("train_lr", self.train_lr, 0, low_open=True)
        for name in ("unlearning_steps", "batch_size", "top_k", "examples_per_source", "test_examples",
                     "train_steps", "checkpoints", "max_length"):
            check_range(name, getattr(self, name), 1)
        if self.experiment:
            if self.test_data != self.train_data:
                raise UsageError(f"test_data={self.test_data!r} must equal train_data={self.train_data!r} "
                                 f"for an experiment ({', '.join(MIXTURES.names())})")
        else:
            if self.test_data in MIXTURES or self.leave_dataset_out:
                raise UsageError(f"train_data={self.train_data!r}: test_data and leave_dataset_out need an "
                                 f"experiment ({', '.join(MIXTURES.names())}) as train_data")
            read_jsonl(self.train_data, "train_data", ("source", "text"), MIXTURES.names())
            read_jsonl(self.test_data, "test_data", ("prompt", "completion"), MIXTURES.names())

    @property
    def experiment(self) -> bool:
        return self.train_data in MIXTURES

    def methods(self) -> list[str]:
        if self.method == "all":
            return ATTRIBUTION_METHODS.in_registration_order()
        return [m.strip() for m in self.method.split(",") if m.strip()]

    def keeps_checkpoints(self) -> bool:
        """Whether a selected method reads the checkpoints saved while training on the mixture."""
        return any(ATTRIBUTION_METHODS.get(method).needs_checkpoints for method in self.methods())

    def params(self) -> dict:
        """The parameters this config's run reads, its cache key: the common fields, the selected methods'
        own fields and, when one of them reads the mixture's checkpoints, their number."""
        read = set(COMMON_FIELDS).union(*(ATTRIBUTION_METHODS.get(method).fields for method in self.methods()))
        if self.keeps_checkpoints():
            read.add("checkpoints")
        return {name: value for name, value in asdict(self).items() if name in read}


def read_jsonl(path: str, parameter: str, keys: tuple[str, ...], experiments: list[str] = ()) -> list[dict]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise UsageError(f"{parameter}={path!r} is neither an experiment ({', '.join(experiments)}) nor a JSONL file")
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
    """Inside the active run: build the data, (for an experiment) train a copy, run each method, log."""
    import copy

    import pandas as pd

    from forgetting.attribution.examples import encode_examples
    from forgetting.attribution.mixtures import leave_dataset_out, train_on_mixture
    from forgetting.models import load_model

    model, tokenizer = load_model(config.model)
    responsible = config.responsible
    if config.experiment:
        mixture = MIXTURES.get(config.train_data)(config.examples_per_source, config.test_examples, config.seed)
        train_rows, test_rows, responsible = mixture.train, mixture.test, responsible or mixture.responsible
    else:
        train_rows = read_jsonl(config.train_data, "train_data", ("source", "text"))
        test_rows = read_jsonl(config.test_data, "test_data", ("prompt", "completion"))
    train = encode_examples(tokenizer, train_rows, config.max_length)
    test = encode_examples(tokenizer, test_rows, config.max_length)
    sources = [row["source"] for row in train_rows]
    metrics = {"n_train_examples": len(train_rows), "n_test_examples": len(test_rows),
               "model_parameters": sum(parameter.numel() for parameter in model.parameters())}
    per_source = {}

    def record(method: str, ranked: pd.DataFrame) -> None:
        ranked = ranked.sort_values("score", ascending=False, ignore_index=True)
        per_source[method] = ranked.set_index("source")["score"]
        if responsible in set(ranked["source"]):
            metrics[f"rank_{method}"] = int(ranked.index[ranked["source"] == responsible][0]) + 1
        mlflow.log_table(ranked, artifact_file=f"attribution/{method}_sources.json")

    checkpoints = None
    if config.experiment:
        mixture_training = dict(steps=config.train_steps, lr=config.train_lr, batch_size=config.batch_size,
                                seed=config.seed, precision=config.precision)
        if config.leave_dataset_out:
            started = time.perf_counter()
            record(GROUND_TRUTH, leave_dataset_out(model, train, sources, test, **mixture_training))
            metrics[f"runtime_s_{GROUND_TRUTH}"] = time.perf_counter() - started
            mlflow.log_metrics(metrics)
        model = copy.deepcopy(model)
        kept = config.checkpoints if config.keeps_checkpoints() else 0
        checkpoints = train_on_mixture(model, train, checkpoints=kept, **mixture_training)
    for method in config.methods():
        spec = ATTRIBUTION_METHODS.get(method)
        options = spec.options_of(config) | ({"checkpoints": checkpoints} if spec.needs_checkpoints else {})
        started = time.perf_counter()
        result = spec.score(model, train, sources, test, **options)
        metrics[f"runtime_s_{method}"] = time.perf_counter() - started
        record(method, result.per_source)
        mlflow.log_metrics(metrics)
        if result.per_example is not None:
            examples = result.per_example.assign(text=[row["text"][:200] for row in train_rows])
            mlflow.log_table(examples, artifact_file=f"attribution/{method}_examples.json")
            top = examples.sort_values("score", ascending=False).head(config.top_k)
            mlflow.log_table(top, artifact_file=f"attribution/{method}_top.json")
    for a, b in combinations(sorted(per_source, key=lambda name: name == GROUND_TRUTH), 2):
        pair = pd.concat([per_source[a], per_source[b]], axis=1)
        for correlation in ("spearman", "pearson"):
            metrics[f"{correlation}_{a}_vs_{b}"] = float(pair.corr(method=correlation).iloc[0, 1])
    mlflow.log_metrics(metrics)
    return metrics
