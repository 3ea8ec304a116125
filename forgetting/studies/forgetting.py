"""The forgetting study's grid: collect → posttrain (method × domain × start) → evaluate → analyze.

A preset names the domains, the methods and each stage's budget. Collect runs once per (model,
domain, seed) that some method learns from: the start model itself (off-rl's preference pairs), the
same-family teacher (sf-sft) and the cross-family teacher (cf-sft). Offline, the same-family
teacher is the start model itself and the cross-family one Gemma-3-270M; a real study names larger
teachers (``same_family_teacher``, ``cross_family_teacher``: ``launch`` overrides the preset's, per model).

A grid seed is a whole replicate of the grid: collect, posttrain and evaluate all take it. Collect
repeats per seed because its seed draws the prompt subset and the sampled responses that sf-sft, cf-sft
and off-rl learn from (a posttrain seed alone would only reshuffle one fixed data set for those methods,
while gt-sft and the online methods draw new prompts). Evaluate's seed draws its rows; the start is scored
on the same rows, so each seed's change from it stays paired. Seed 0 keeps the plain registered names;
seed s registers ``<name>-seed<s>`` (the unlearning study's ``seeded_name``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from forgetting.errors import UsageError
from forgetting.posttrain import POSTTRAIN_METHODS

ALL_METHODS = tuple(POSTTRAIN_METHODS.in_registration_order())


@dataclass(frozen=True)
class ForgettingPreset:
    domains: tuple[str, ...] = ("math", "code", "qa")
    methods: tuple[str, ...] = ALL_METHODS
    collect: dict = field(default_factory=dict)
    posttrain: dict = field(default_factory=dict)
    evaluate: dict = field(default_factory=dict)
    same_family_teacher: str = ""  # '' = the start model
    cross_family_teacher: str = "gemma3-270m"


FORGETTING_PRESETS = {
    # Budgets for GPU jobs: the stages' own defaults, every benchmark row.
    "paper": ForgettingPreset(collect={"n": 1024, "samples": 8}, posttrain={"n": 1024, "steps": 500}),
    # Small budgets that still move every objective on 2 CPU cores (README: the forgetting study).
    "quick": ForgettingPreset(
        domains=("math", "qa"),
        collect={"n": 256, "samples": 2, "max_new_tokens": 128, "precision": "bf16-autocast"},
        posttrain={"n": 32, "steps": 10, "batch_size": 4, "max_new_tokens": 64},
        evaluate={"limit": 60, "max_new_tokens": 64, "samples": 2}),
    "smoke": ForgettingPreset(
        domains=("math",), methods=("gt-sft", "sf-sft", "off-rl"),
        collect={"n": 4, "samples": 2, "max_new_tokens": 8},
        posttrain={"n": 4, "steps": 2, "batch_size": 2, "max_new_tokens": 8},
        evaluate={"limit": 4, "max_new_tokens": 8, "samples": 2, "benchmarks": "arc_easy,gsm8k"}),
}


def teacher_of(method: str, start_model: str, preset: ForgettingPreset) -> str | None:
    """The model whose collected data ``method`` learns from (None: it builds its own)."""
    return {"": None, "start": start_model, "same-family": preset.same_family_teacher or start_model,
            "cross-family": preset.cross_family_teacher}[POSTTRAIN_METHODS.get(method).teacher]


def with_teachers(preset: ForgettingPreset, same_family: str = "", cross_family: str = "") -> ForgettingPreset:
    """The preset with the teachers given (a launch's values); an empty one keeps the preset's."""
    from dataclasses import replace

    return replace(preset, same_family_teacher=same_family or preset.same_family_teacher,
                   cross_family_teacher=cross_family or preset.cross_family_teacher)


def forgetting_configs(starts: dict[str, str], preset: ForgettingPreset, gpus: int = 1, cluster: bool = False,
                       seed: int = 0):
    """``(collects, posttrains, evaluations)``: every config of the grid for one grid ``seed``, checked
    before any job exists.

    ``starts`` maps start (base, safe) to a model spec. Posttrain configs that learn from collected data
    carry ``data=""``: the job looks up the collect run once it exists (``forgetting.studies.slurm``).
    Each post-training job runs on ``gpus`` GPUs: data-parallel TRL (torchrun) or, with ``cluster``, verl
    for the methods it has (SFT, GRPO).
    """
    from dataclasses import replace

    from forgetting.evaluation.suites import EvaluateConfig
    from forgetting.posttrain.collect import CollectConfig
    from forgetting.posttrain.stage import PosttrainConfig
    from forgetting.studies.unlearning import seeded_name

    collects, posttrains = {}, []
    for start, model in starts.items():
        for domain in preset.domains:
            for method in preset.methods:
                config = PosttrainConfig(model=model, method=method, domain=domain, start=start, gpus=gpus,
                                         seed=seed, **preset.posttrain)
                if seed:
                    config = replace(config, register_as=seeded_name(config.model_name(), seed))
                if cluster and POSTTRAIN_METHODS.get(method).verl_trainer:
                    config = replace(config, backend="cluster", launch="here")
                replace(config, launch="dry-run").validate_parameters()  # GPUs are checked on the node
                posttrains.append(config)
                teacher = teacher_of(method, model, preset)
                if POSTTRAIN_METHODS.get(method).teacher == "cross-family" and teacher == model:
                    raise UsageError(f"cross_family_teacher={teacher!r} is the {start} start model itself: {method} "
                                     "needs a teacher of another family (give one per model, comma-separated)")
                if teacher:
                    collects.setdefault((teacher, domain), CollectConfig(model=teacher, domain=domain, seed=seed,
                                                                         **preset.collect))
    evaluations = [EvaluateConfig(model=f"models:/{p.model_name()}@posttrained", suite="all", reference=p.model,
                                  seed=seed, **preset.evaluate) for p in posttrains]
    for config in (*collects.values(), *evaluations):
        config.validate()
    return list(collects.values()), posttrains, evaluations
