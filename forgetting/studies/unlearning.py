"""The unlearning study as one job (the ``main`` entry point): every pruning method × sparsity plus
the unpruned model, each trained further on Python code, each checkpoint fine-tuned per task; the
whole grid once per model of ``models`` (the model-scale axis), then one analysis.

Every step is a cached stage, so a rerun after everything finished recomputes nothing and a
killed grid resumes where it stopped; ``analyze`` then draws the report from the tracking store.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import mlflow

from forgetting.errors import UsageError, check_choice
from forgetting.models.bundled import DEFAULT_MODEL


@dataclass(frozen=True)
class GridPreset:
    methods: tuple[str, ...] = ("random", "attribution", "tuneprune")
    sparsities: tuple[float, ...] = (0.3, 0.63, 0.8)
    tasks: tuple[str, ...] = ("counterfact", "arc_easy")
    prune: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)
    finetune_every_checkpoint: bool = True  # False: only the first and the last checkpoint

    def finetuned_steps(self, steps: list) -> list:
        """The checkpoints (training steps, in order) that each task's sweep fine-tunes."""
        return list(steps) if self.finetune_every_checkpoint else sorted({steps[0], steps[-1]}, key=int)


PRESETS = {
    # The published budgets (10k steps, checkpoints every 2.5k, full LR lists and eval splits): a GPU job.
    # tuneprune: 100 steps on 400 distinct blocks (no block seen twice, so the LM part does not overfit),
    # a proximal step of 0.01 in AdamW's metric (README: the measured budgets).
    "paper": GridPreset(prune={"calibration_blocks": 400, "tuneprune_steps": 100, "tuneprune_lr": 1e-4,
                               "tuneprune_penalty_lr": 0.01, "checkpoint_dtype": "bf16"},
                        train={"steps": 10_000, "checkpoint_every": 2_500, "checkpoint_dtype": "bf16"},
                        finetune={"epochs": 1}),
    # Minutes on 2 CPU cores with effects larger than noise (see README for measured numbers).
    "quick": GridPreset(
        tasks=("counterfact",),
        prune={"calibration_blocks": 8, "eval_blocks": 8, "block_size": 128, "tuneprune_steps": 8,
               "tuneprune_lr": 1e-4, "tuneprune_penalty_lr": 0.1, "precision": "bf16-autocast",
               "checkpoint_dtype": "bf16"},
        train={"steps": 16, "checkpoint_every": 8, "batch_size": 4, "block_size": 128, "eval_blocks": 8,
               "checkpoint_dtype": "bf16"},
        finetune={"lrs": "1e-5,1e-4", "train_limit": 64, "batch_size": 16},
        finetune_every_checkpoint=False),
    # The plumbing end to end in a few minutes (tests).
    "smoke": GridPreset(
        methods=("random", "attribution"), sparsities=(0.5,), tasks=("counterfact",),
        prune={"calibration_blocks": 2, "eval_blocks": 2, "block_size": 32, "batch_size": 2},
        train={"steps": 2, "checkpoint_every": 2, "batch_size": 2, "block_size": 32, "eval_blocks": 2},
        finetune={"lrs": "1e-4", "train_limit": 8, "eval_limit": 8}),
}


def model_specs(model: str, models: str = "") -> list[str]:
    """The models of a grid: ``models`` (comma-separated specs), else ``[model]``. Each model's checkpoints
    register under a name derived from it (``<name>-<method>-<percent>``, ``<name>-python``), so two specs
    that derive the same name are refused, as is a spec given twice."""
    from forgetting.tracking.checkpoints import registered_name

    specs = [spec.strip() for spec in models.split(",") if spec.strip()] if models.strip() else [model]
    if models.strip() and model != DEFAULT_MODEL and specs != [model]:
        raise UsageError(f"model={model!r} and models={models!r}: give one of them")
    if not specs:
        raise UsageError(f"models={models!r} names no model spec")
    names: dict[str, str] = {}
    for spec in specs:
        name = registered_name(spec)
        if name in names:
            twice = f"lists {spec!r} twice" if names[name] == spec else \
                f"has {names[name]!r} and {spec!r}, which both register as {name!r}"
            raise UsageError(f"models={models!r} {twice}: each model needs its own registered names")
        names[name] = spec
    return specs


def seed_list(seeds: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``: the grid's seeds, each a whole grid (random scores, calibration and
    corpus samples, data order, fine-tuning splits)."""
    try:
        values = [int(value) for value in seeds.split(",") if value.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 0 or len(set(values)) != len(values):
        raise UsageError(f"seeds={seeds!r} is not a comma-separated list of distinct integers >= 0")
    return values


def seeded_name(name: str, seed: int) -> str:
    """The registered name of a checkpoint of grid seed ``seed`` (seed 0 keeps the plain name)."""
    return f"{name}-seed{seed}" if seed else name


def train_config(train, start: str):
    """The grid's train config for ``start``: a pruned start registers under its own (seeded) name plus
    ``-python``; the unpruned model under ``<model>-seed<s>-python`` for a seed other than 0."""
    from dataclasses import replace

    from forgetting.tracking.checkpoints import registered_name

    dense = train.seed and start == train.model
    return replace(train, model=start,
                   register_as=f"{seeded_name(registered_name(train.model), train.seed)}-python" if dense else "")


def stage_configs(model: str, preset: GridPreset, device: str = "auto", gpus: int = 1, seed: int = 0):
    """Every prune config, a train config template (data-parallel on ``gpus``) and the fine-tune
    config per task, all on ``device`` with ``seed`` and validated before any run is created. A seed
    other than 0 registers its pruned checkpoints (and so their trained ones) under ``seeded_name``."""
    from dataclasses import replace

    from forgetting.pruning.stage import PruneConfig
    from forgetting.training.finetune_stage import FinetuneConfig
    from forgetting.training.stage import TrainConfig

    prunes = [PruneConfig(model=model, method=m, sparsity=s, device=device, seed=seed, **preset.prune)
              for m in preset.methods for s in preset.sparsities]
    prunes = [replace(p, register_as=seeded_name(p.model_name(), seed)) if seed else p for p in prunes]
    train = TrainConfig(model=model, device=device, gpus=gpus, seed=seed, **preset.train)
    finetunes = [FinetuneConfig(model=model, task=t, device=device, seed=seed, **preset.finetune)
                 for t in preset.tasks]
    for config in (*prunes, train, *finetunes):
        config.validate()
    return prunes, train, finetunes


def run_grid(models: list[str] | str, preset_name: str, device: str = "auto", gpus: int = 1,
             seeds: tuple[int, ...] = (0,)) -> None:
    """Run (or reuse) every stage of the grid, model after model and seed after seed, under one parent run,
    then the analysis (which aggregates over seeds). Every model's configs are validated and every model
    resolved before the parent run exists."""
    from dataclasses import replace

    from forgetting.analysis import AnalyzeConfig, analyze_stage
    from forgetting.models import resolve_model
    from forgetting.stages import finetune_stage, prune_stage, select_device, train_stage
    from forgetting.tracking import configure, experiment_id
    from forgetting.tracking.runs import log_unlogged_params
    from forgetting.tracking.studies import study_of
    from forgetting.training.stage import CHECKPOINTS_TAG

    models = [models] if isinstance(models, str) else list(models)
    check_choice("preset", preset_name, tuple(PRESETS))
    preset = PRESETS[preset_name]
    configure()
    grids = {(model, seed): stage_configs(model, preset, device, gpus, seed) for model in models for seed in seeds}
    select_device(next(iter(grids.values()))[1])
    for model in models:
        resolve_model(model)
    # The study's parent: the run ``mlflow run -e main`` created (MLFLOW_RUN_ID) or a new one, holding only
    # the grid's own parameters; every stage below gets its own run nested under it. MLflow resumes the
    # run MLFLOW_RUN_ID names only when it reads the variable itself, so it is dropped here: left set, the
    # first stage's start_run would resume this run instead of nesting a new one.
    launcher = os.environ.pop("MLFLOW_RUN_ID", None)
    study = study_of("main")
    with mlflow.start_run(run_id=launcher, experiment_id=None if launcher else experiment_id(study),
                          run_name=f"main-{preset_name}",
                          tags={"forgetting.study": study, "forgetting.entry_point": "main"}):
        log_unlogged_params(mlflow.active_run().info.run_id,
                            {"models": ",".join(models), "preset": preset_name, "device": device, "gpus": gpus,
                             "seeds": ",".join(map(str, seeds))})
        for (model, _), (prunes, train, finetunes) in grids.items():
            starts = [model] + [pruned_version(prune_stage(config)) for config in prunes]
            for start in starts:
                trained = train_stage(train_config(train, start))
                checkpoints = json.loads(trained.data.tags[CHECKPOINTS_TAG])
                for step in preset.finetuned_steps(sorted(checkpoints, key=int)):
                    for config in finetunes:
                        finetune_stage(replace(config, model=checkpoints[step]))
        analyze_stage(AnalyzeConfig(study=study))


def pruned_version(prune_run) -> str:
    """``models:/name/version`` of the checkpoint a prune run registered."""
    run_id = prune_run.info.run_id  # the registering run: a later version may share its artifact
    [version] = mlflow.MlflowClient().search_model_versions(f"run_id = '{run_id}' and tags.parent_run = '{run_id}'")
    return f"models:/{version.name}/{version.version}"
