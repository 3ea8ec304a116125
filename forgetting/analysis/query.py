"""The unlearning study out of the tracking store, as pandas frames.

Only FINISHED stage runs count; when a key was run several times (reruns with other settings)
the run that started last wins. Runs are matched on the ``forgetting.entry_point`` tag, so the
analyze runs and the nested Optuna trials (no such tag) never count as stage results.

A grid run on several models (``main -P models=…``) is told apart by each checkpoint's ``base_model``,
the spec its lineage starts from, and that model's ``parameters`` (``ModelSizes``): the figures draw
one point, line or facet per model size.

Runs that differ only by their ``seed`` parameter are one condition: the newest run of each seed counts,
and each condition's numbers are their mean over seeds with a 95% interval over them (``noise.over_seeds``;
one seed: the interval its run logged, where it logged one). ``seeds`` and ``n_seeds`` say which seeds.
"""
from __future__ import annotations

from typing import Iterable

import mlflow
import pandas as pd
from mlflow.entities import Run

SIZE_COLUMNS = ["base_model", "parameters"]
SEED_COLUMNS = ["n_seeds", "seeds"]


def _with_intervals(*names: str) -> list[str]:
    return [column for name in names for column in (name, f"{name}_ci_low", f"{name}_ci_high")]


FINETUNE_VALUES = ["baseline_acc", "best_acc", "gain"]
FINETUNE_COLUMNS = [*SIZE_COLUMNS, "method", "sparsity", "step", "task", *SEED_COLUMNS, *_with_intervals(*FINETUNE_VALUES),
                    "best_lr", "run_id"]
CURVE_COLUMNS = [*SIZE_COLUMNS, "method", "sparsity", "step", *SEED_COLUMNS, *_with_intervals("heldout_loss"), "run_id"]
COST_VALUES = ["tokens_per_second", "peak_rss_mb", "peak_gpu_memory_mb"]
COST_COLUMNS = [*SIZE_COLUMNS, "method", "sparsity", *SEED_COLUMNS, *_with_intervals(*COST_VALUES), "run_id"]
CHECKPOINT_COLUMNS = ["name", "version", "stage", "method", "sparsity", "step", "run_id"]
TRIAL_COLUMNS = ["parent_run_id", "trial", "lr", "accuracy", "run_id"]
ATTACK_COLUMNS = ["method", "sparsity", "step", "attack", *_with_intervals("asr", "asr_plain"), "task",
                  *_with_intervals("accuracy"), "model", *SIZE_COLUMNS, "seed", "run_id"]
PARAMETER_METRICS = ("parameters", "model_parameters")  # what a stage logs as its model's parameter count


class ModelSizes:
    """Which model a checkpoint descends from, and how many parameters a model has; each looked up once.

    ``base(spec)`` follows a registered checkpoint to the run that registered it (its ``parent_run`` tag)
    and that run's ``model`` parameter, again and again, down to a spec outside the registry: a bundled
    name, a directory or a hub id. ``parameters(spec)`` is, in order: a count the study's runs logged for
    that spec (``known``, e.g. a prune run's ``parameters_before``), the version's ``scale`` tag, the
    registering run's ``parameters``/``model_parameters`` metric, or, for a spec on this machine, the count
    of the model its ``config.json`` describes, built on the meta device (no weights are read).
    """

    def __init__(self, known: dict[str, float] | None = None):
        self.known = {spec: float(count) for spec, count in (known or {}).items() if spec and count}
        self._base: dict[str, str] = {}
        self._parameters: dict[str, float | None] = {}

    def base(self, spec: str | None) -> str:
        if not spec:
            return ""
        from forgetting.tracking.checkpoints import is_tracking_uri

        current, seen = spec, []
        while current not in self._base and is_tracking_uri(current) and current not in seen:
            seen.append(current)
            upstream = (_registering(current)[1] or {}).get("model")
            if not upstream:
                break
            current = upstream
        root = self._base.get(current, current)
        self._base.update(dict.fromkeys([*seen, spec], root))  # every checkpoint on the way has the same base
        return root

    def parameters(self, spec: str | None) -> float | None:
        if not spec:
            return None
        if spec not in self._parameters:
            self._parameters[spec] = self._count(spec)
        return self._parameters[spec]

    def _count(self, spec: str) -> float | None:
        from forgetting.tracking.checkpoints import is_tracking_uri

        if spec in self.known:
            return self.known[spec]
        if not is_tracking_uri(spec):
            return config_parameters(spec)
        tags, _, metrics = _registering(spec)
        for value in (tags.get("scale"), *(metrics.get(name) for name in PARAMETER_METRICS)):
            if value not in (None, ""):
                return float(value)
        return None


def _registering(spec: str) -> tuple[dict, dict | None, dict]:
    """``(version tags, params, metrics)`` of the registered checkpoint ``spec`` and the run that registered
    it (a ``runs:/`` URI or run ID: that run); empty where the registry or the store has none."""
    from mlflow.exceptions import MlflowException

    from forgetting.errors import UsageError
    from forgetting.tracking.checkpoints import RUN_ID, RUN_URI, checkpoint_version

    try:
        version = checkpoint_version(spec)
    except (UsageError, MlflowException):
        version = None
    tags = dict(version.tags) if version else {}
    run_id = (tags.get("parent_run") or version.run_id) if version else (
        match["run_id"] if (match := RUN_URI.match(spec)) else spec if RUN_ID.match(spec) else None)
    try:
        run = mlflow.MlflowClient().get_run(run_id) if run_id else None
    except MlflowException:
        run = None
    return tags, (dict(run.data.params) if run else None), (dict(run.data.metrics) if run else {})


def config_parameters(spec: str) -> float | None:
    """Parameters of the model that ``spec``'s ``config.json`` describes, where that file is on this machine
    (a checkpoint directory, a converted bundled model, a hub id in the HF cache); None elsewhere."""
    from pathlib import Path

    from forgetting.models.bundled import BUNDLED, CONVERSION, CONVERSIONS, cache_dir
    from forgetting.models.resolve import HUB_ID

    if spec in BUNDLED:
        config = cache_dir() / f"{spec}-{CONVERSIONS.get(spec, CONVERSION)}" / "config.json"
    elif Path(spec).expanduser().is_dir():
        config = Path(spec).expanduser() / "config.json"
    elif HUB_ID.match(spec):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(spec, "config.json")
        config = Path(cached) if isinstance(cached, str) else None
    else:
        config = None
    if config is None or not config.is_file():
        return None
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        import forgetting.models.variable_llama  # noqa: F401 - pruned (variable-size) Llamas

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(config.parent))
        return float(sum(parameter.numel() for parameter in model.parameters()))
    except Exception:  # noqa: BLE001 - an unknown architecture has no count; the figure says so
        return None


def study_sizes(experiment_ids: Iterable[str], study: str | None = None) -> ModelSizes:
    """``ModelSizes`` that knows the parameter counts the study's prune runs logged for the models they pruned."""
    known = {}
    for run in stage_runs(experiment_ids, "prune", study):  # newest first: the first count stands
        if (count := run.data.metrics.get("parameters_before")) and run.data.params.get("model"):
            known.setdefault(run.data.params["model"], count)
    return ModelSizes(known)


def stage_runs(experiment_ids: Iterable[str], entry_point: str, study: str | None = None) -> list[Run]:
    """FINISHED runs of one stage, newest first."""
    query = f"tags.`forgetting.entry_point` = '{entry_point}' and attributes.status = 'FINISHED'"
    if study:
        query += f" and tags.`forgetting.study` = '{study}'"
    return mlflow.search_runs(sorted(set(experiment_ids)), query, order_by=["attributes.start_time DESC"],
                              output_format="list")


def finetune_results(experiment_ids: Iterable[str], study: str | None = None,
                     sizes: ModelSizes | None = None) -> pd.DataFrame:
    """One row per (base model, method, sparsity, step, task): accuracy before fine-tuning, the best of
    the sweep and their difference (``gain``), each the mean over seeds with its 95% interval, and the
    median best learning rate. The finetune stage logs no interval of its own, so one seed has none."""
    sizes = sizes or study_sizes(experiment_ids, study)
    rows = []
    for run in stage_runs(experiment_ids, "finetune", study):
        metrics = run.data.metrics
        gain = (metrics["best_acc"] - metrics["baseline_acc"]
                if metrics.get("best_acc") is not None and metrics.get("baseline_acc") is not None else None)
        rows.append(_size(sizes, run) | {
            "method": run.data.params.get("method"), "sparsity": run.data.params.get("sparsity"),
            "step": run.data.params.get("step"), "task": run.data.params.get("task"), "seed": _seed(run),
            "gain": gain, "best_lr": metrics.get("best_lr"), "run_id": run.info.run_id,
            "start_time": run.info.start_time} | {name: metrics.get(name) for name in _with_intervals(*FINETUNE_VALUES[:2])})
    key = ["base_model", "method", "sparsity", "step", "task"]
    return _over_seeds(_newest(rows, [*key, "seed"], [*FINETUNE_COLUMNS, "seed"]), [*key, "parameters"],
                       FINETUNE_VALUES, {"best_lr": "median"}, FINETUNE_COLUMNS, key)


def training_curves(experiment_ids: Iterable[str], study: str | None = None,
                    sizes: ModelSizes | None = None) -> pd.DataFrame:
    """Held-out Python loss against training step, from the newest train run of each (base model, method,
    sparsity, seed); several seeds: the mean per step with its 95% interval over the seeds."""
    latest = _train_runs(experiment_ids, study, sizes)
    client = mlflow.MlflowClient()
    rows = []
    for row in latest.to_dict("records"):
        last_per_step = {}  # a resumed run may log a step twice: the later value stands
        for point in sorted(client.get_metric_history(row["run_id"], "heldout_loss"), key=lambda m: m.timestamp):
            last_per_step[point.step] = point.value
        rows += [{name: row[name] for name in (*SIZE_COLUMNS, "method", "sparsity", "seed", "run_id")}
                 | {"step": step, "heldout_loss": value} for step, value in sorted(last_per_step.items())]
    key = ["base_model", "method", "sparsity", "step"]
    return _over_seeds(_frame(rows, [*CURVE_COLUMNS, "seed"]), [*key, "parameters"], ["heldout_loss"], {},
                       CURVE_COLUMNS, [*key[:3], "step"])


def train_costs(experiment_ids: Iterable[str], study: str | None = None,
                sizes: ModelSizes | None = None) -> pd.DataFrame:
    """The speed and peak memory of the newest train run of each (base model, method, sparsity, seed),
    averaged over seeds."""
    key = ["base_model", "method", "sparsity"]
    return _over_seeds(_train_runs(experiment_ids, study, sizes), [*key, "parameters"], COST_VALUES, {},
                       COST_COLUMNS, key)


def _train_runs(experiment_ids: Iterable[str], study: str | None, sizes: ModelSizes | None) -> pd.DataFrame:
    """The newest train run of each (base model, method, sparsity, seed)."""
    sizes = sizes or study_sizes(experiment_ids, study)
    rows = [_size(sizes, run) | {"method": run.data.params.get("method"), "sparsity": run.data.params.get("sparsity"),
                                 "seed": _seed(run), "run_id": run.info.run_id, "start_time": run.info.start_time}
            | {name: run.data.metrics.get(name) for name in COST_VALUES}
            for run in stage_runs(experiment_ids, "train", study)]
    return _newest(rows, ["base_model", "method", "sparsity", "seed"], [*SIZE_COLUMNS, "method", "sparsity", "seed",
                                                                       *COST_VALUES, "run_id"])


def checkpoint_versions(study: str) -> pd.DataFrame:
    """Registered checkpoints of the study (prune and train stages) with their step."""
    client = mlflow.MlflowClient()
    versions, token = [], None
    while True:
        page = client.search_model_versions(f"tags.study = '{study}'", page_token=token)
        versions += page
        token = page.token
        if not token:
            break
    rows = [{"name": v.name, "version": int(v.version), "stage": v.tags.get("stage"), "method": v.tags.get("method"),
             "sparsity": v.tags.get("sparsity"), "step": v.tags.get("step"),
             "run_id": v.tags.get("parent_run") or v.run_id} for v in versions]
    return _frame(rows, CHECKPOINT_COLUMNS).sort_values(["name", "version"], ignore_index=True)


def trials(experiment_ids: Iterable[str], parent_run_ids: Iterable[str]) -> pd.DataFrame:
    """The learning-rate trials (nested runs) of the given fine-tune runs."""
    parents = set(parent_run_ids)
    found = mlflow.search_runs(sorted(set(experiment_ids)),
                               "tags.`forgetting.trial` LIKE '%' and attributes.status = 'FINISHED'",
                               output_format="list") if parents else []
    rows = [{"parent_run_id": run.data.tags.get("mlflow.parentRunId"), "trial": run.data.tags.get("forgetting.trial"),
             "lr": run.data.params.get("lr"), "accuracy": run.data.metrics.get("accuracy"),
             "run_id": run.info.run_id} for run in found if run.data.tags.get("mlflow.parentRunId") in parents]
    frame = _frame(rows, TRIAL_COLUMNS)
    frame["trial"] = pd.to_numeric(frame["trial"], errors="coerce").astype("Int64")
    frame["lr"] = pd.to_numeric(frame["lr"], errors="coerce")
    return frame.sort_values(["parent_run_id", "trial"], ignore_index=True)


def attack_results(study: str, sizes: ModelSizes | None = None) -> pd.DataFrame:
    """Attack success per checkpoint and attack (the newest attacks run of each), next to every task
    accuracy the same checkpoint was evaluated on (``task``/``accuracy`` empty where none was).
    Evaluate runs are filed under their checkpoint's study, in whichever experiment launched them."""
    query = (f"tags.`forgetting.entry_point` = 'evaluate' and tags.`forgetting.study` = '{study}' "
             "and attributes.status = 'FINISHED'")
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=query,
                              order_by=["attributes.start_time DESC"], output_format="list")
    sizes = sizes or ModelSizes()
    accuracy: dict[str, dict[str, dict]] = {}
    for run in runs:
        if "accuracy" in run.data.metrics and run.data.params.get("suite", "accuracy") == "accuracy":
            accuracy.setdefault(run.data.params.get("upstream_model"), {}).setdefault(
                run.data.params.get("task"), {name: run.data.metrics.get(name) for name in _with_intervals("accuracy")})
    rows = []
    for run in runs:
        if "asr" not in run.data.metrics:
            continue
        params, model = run.data.params, run.data.params.get("upstream_model")
        base = {"method": params.get("method"), "sparsity": params.get("sparsity"), "step": params.get("step"),
                "attack": params.get("attack"), "model": model, "seed": _seed(run), "run_id": run.info.run_id,
                "start_time": run.info.start_time} | _size(sizes, run) | {
                    name: run.data.metrics.get(name) for name in _with_intervals("asr", "asr_plain")}
        tasks = accuracy.get(model) or {None: {}}
        rows += [base | {"task": task} | values for task, values in tasks.items()]
    frame = _frame(rows, [*ATTACK_COLUMNS, "start_time"], required=("method", "sparsity", "step"))
    frame = frame.drop_duplicates(["model", "attack", "task", "seed"])  # runs come newest first
    return frame.sort_values(["attack", "method", "sparsity", "step"], ignore_index=True)[ATTACK_COLUMNS]


def _size(sizes: ModelSizes, run: Run) -> dict:
    """The base model of the run's ``model`` (its upstream model for an evaluate run) and its parameter count."""
    base = sizes.base(run.data.params.get("model") or run.data.params.get("upstream_model"))
    return {"base_model": base, "parameters": sizes.parameters(base)}


def _seed(run: Run) -> str:
    """The run's ``seed`` parameter ('0', the stages' default, where it logged none; '1.0' and '1' alike)."""
    value = run.data.params.get("seed", "0")
    try:
        return f"{float(value):g}"
    except ValueError:
        return value


def _over_seeds(frame: pd.DataFrame, by: list[str], values: list[str], keep: dict, columns: list[str],
                order: list[str]) -> pd.DataFrame:
    """``noise.over_seeds`` of ``frame`` with ``columns`` in order, sorted by ``order`` and typed as ``_frame`` types."""
    from forgetting.analysis.noise import over_seeds

    frame = over_seeds(frame, by, values, keep)
    frame = _frame(frame.to_dict("records"), columns) if len(frame) else pd.DataFrame(columns=columns)
    return frame.sort_values(order, ignore_index=True)[columns]


def _frame(rows: list[dict], columns: list[str],
           required: tuple[str, ...] = ("method", "sparsity", "step", "task")) -> pd.DataFrame:
    """Rows as a frame; sparsity, step and parameters (strings in MLflow) as numbers; rows without a
    ``required`` value dropped."""
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys([*columns, *(rows[0] if rows else [])])))
    for column in ("sparsity", "step", "parameters"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.dropna(subset=[c for c in required if c in frame])
    if "step" in frame:
        frame["step"] = frame["step"].astype(int)
    return frame.reset_index(drop=True)


def _newest(rows: list[dict], key: list[str], columns: list[str]) -> pd.DataFrame:
    frame = _frame(rows, [*columns, "start_time"])
    frame = frame.sort_values("start_time", ascending=False, kind="stable").drop_duplicates(key)
    return frame.sort_values(key, ignore_index=True)[columns]
