"""The ``evaluate`` stage: one config, several suites, each a registry entry.

- ``accuracy``: a multiple-choice, generative or code task (``forgetting.evaluation.accuracy``);
- ``attacks``: GCG or AutoDAN success rate on harmful behaviours (``attack_suite``);
- ``probes``: per-layer linear fact probes with a control task (``probe_suite``);
- ``forgetting``: capability benchmarks through lm-eval, per example, with the correct→incorrect and
  incorrect→correct transitions from a ``reference`` model (``forgetting_suite``; the forgetting study);
- ``classification``: a sequence classifier's accuracy, F1, active parameters, time and memory
  (``classification``; the selective study);
- ``safety``: refusal rate on harmful behaviours and compliance on benign questions (``safety_suite``);
- ``policy``: Self-BLEU, distinct-1/2, reply lengths and calibration error (``policy_suite``);
- ``representation``: per-layer CKA, weight-delta SVD and refusal-direction attenuation against
  ``reference`` (``representation_suite``);
- ``all``: forgetting, safety, policy and representation in one run (the forgetting study's evaluation).

A run's cache key covers only the parameters its suite reads, so changing a GCG budget does not
re-run an accuracy evaluation.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from forgetting.device import DEVICE_HELP, PRECISIONS
from forgetting.errors import UsageError, check_choice, check_range
from forgetting.models import DEFAULT_MODEL
from forgetting.registry import Registry

EVALUATION_SUITES = Registry("suite")
EVALUATION_SUITES.register("accuracy", "forgetting.evaluation.accuracy:evaluate_accuracy")
EVALUATION_SUITES.register("attacks", "forgetting.evaluation.attack_suite:evaluate_attacks")
EVALUATION_SUITES.register("probes", "forgetting.evaluation.probe_suite:evaluate_probes")
EVALUATION_SUITES.register("classification", "forgetting.evaluation.classification:evaluate_classification")
EVALUATION_SUITES.register("forgetting", "forgetting.evaluation.forgetting_suite:evaluate_forgetting")
EVALUATION_SUITES.register("safety", "forgetting.evaluation.safety_suite:evaluate_safety")
EVALUATION_SUITES.register("policy", "forgetting.evaluation.policy_suite:evaluate_policy")
EVALUATION_SUITES.register("representation", "forgetting.evaluation.representation_suite:evaluate_representation")
EVALUATION_SUITES.register("all", "forgetting.evaluation.suites:evaluate_all")
ALL_SUITES = ("forgetting", "safety", "policy", "representation")

COMMON_FIELDS = ("model", "suite", "batch_size", "precision", "device", "seed")
SUITE_FIELDS = {
    "accuracy": ("task", "split", "limit", "source", "max_new_tokens", "prompt_format", "engine"),
    "attacks": ("attack", "behaviours", "judge", "split", "limit", "source", "max_new_tokens", "steps",
                "suffix_length", "top_k", "attack_batch", "generations", "population", "transfer_from"),
    "probes": ("probe_c",),
    "classification": ("task", "split", "limit", "source", "sparse"),
    "forgetting": ("benchmarks", "reference", "split", "limit", "source", "max_new_tokens", "engine"),
    "safety": ("behaviours", "judge", "split", "limit", "source", "max_new_tokens"),
    "policy": ("generation_task", "calibration_task", "samples", "temperature", "split", "limit", "source",
               "max_new_tokens", "engine"),
    "representation": ("reference", "behaviours", "split", "limit", "source"),
}
HUB_SUITES = ("accuracy", "attacks", "classification", "forgetting", "safety", "policy", "representation")
"""Suites that load their data with ``source`` (``source`` is in each one's cache key)."""


@dataclass(frozen=True)
class EvaluateConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "model spec (see README: Models)"})
    suite: str = field(default="accuracy", metadata={
        "help": "accuracy, attacks, probes, classification, forgetting, safety, policy, representation or all"})
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
        self.check_source()
        check_choice("precision", self.precision, PRECISIONS)
        if "engine" in self.params():
            from forgetting.backends.engines import check_engine

            check_engine(self.engine)
        if self.suite == "accuracy":
            from forgetting.evaluation.accuracy import check_accuracy

            check_accuracy(self)
        elif self.suite == "attacks":
            from forgetting.evaluation.attack_suite import check_attacks

            check_attacks(self)
        elif self.suite == "classification":
            from forgetting.evaluation.classification import check_classification

            check_classification(self)
        elif self.suite == "forgetting":
            from forgetting.evaluation.forgetting_suite import check_forgetting

            check_range("max_new_tokens", self.max_new_tokens, 1)
            check_forgetting(self)
        elif self.suite in ("safety", "policy", "representation", "all"):
            self.check_study_suites()
        elif self.suite == "probes":
            check_range("probe_c", self.probe_c, 0, low_open=True)

    def check_source(self) -> None:
        from forgetting.data import SOURCES

        check_choice("source", self.source, SOURCES)
        suites = ALL_SUITES if self.suite == "all" else (self.suite,)
        unread = [suite for suite in suites if suite not in HUB_SUITES]
        if self.source == "hub" and unread:
            raise UsageError(f"source='hub' is not read by suite={', '.join(unread)}; suites that read it: "
                             f"{', '.join(HUB_SUITES)}")

    def check_study_suites(self) -> None:
        from forgetting.data import check_task
        from forgetting.evaluation.forgetting_suite import check_forgetting
        from forgetting.evaluation.policy_suite import check_policy
        from forgetting.evaluation.representation_suite import check_representation

        suites = ALL_SUITES if self.suite == "all" else (self.suite,)
        check_range("max_new_tokens", self.max_new_tokens, 1)
        if "safety" in suites or "representation" in suites:
            check_choice("behaviours", self.behaviours, ("harmbench", "advbench"))
            check_task(self.behaviours, self.split, source=self.source)
        if "safety" in suites:
            from forgetting.evaluation.judges import check_report_judge

            check_report_judge(self.judge)
        checks = {"forgetting": check_forgetting, "policy": check_policy, "representation": check_representation}
        for suite in suites:
            checks.get(suite, lambda config: None)(self)

    def params(self) -> dict:
        """The parameters the suite reads: what the cache key covers."""
        values = asdict(self)
        suites = ALL_SUITES if self.suite == "all" else (self.suite,)
        fields = COMMON_FIELDS + tuple(dict.fromkeys(f for suite in suites for f in SUITE_FIELDS.get(suite, ())))
        return {name: values[name] for name in fields}


def run_suite(config: EvaluateConfig) -> dict[str, float]:
    return EVALUATION_SUITES.get(config.suite)(config)


def evaluate_all(config) -> dict[str, float]:
    """Every suite of the forgetting study in one run; their metric names do not overlap."""
    from dataclasses import replace

    metrics = {}
    for suite in ALL_SUITES:
        metrics |= EVALUATION_SUITES.get(suite)(replace(config, suite=suite))
    return metrics
