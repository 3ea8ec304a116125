"""The forgetting study out of the tracking store: what each post-training method forgot, per domain,
with the noise of every number.

Rows come from FINISHED ``evaluate`` runs of the study (suite ``forgetting`` or ``all``, newest per model
and seed); a model's method, domain and start are the run's lineage parameters, its scale the ``scale``
tag (parameters) of its registered version (``query.ModelSizes``: else a parameter count its runs
logged, or its config). Models that differ only by seed are one *condition* (``Conditions``): the
registered name less a grid seed's ``-seed<s>`` and every parameter of the run that registered it except
the seed and the name it registered under, the collect run it learned from counted by that run's own
settings (a model outside the registry is its own condition); so a method on one domain from one start
is one row however many seeds ``launch -P seeds=…`` ran. Each condition's numbers are the mean over its
seeds with a 95% interval over them, or the interval its one run logged (``noise.over_seeds``).

Per condition: the accuracy change on every benchmark (code tasks such as HumanEval as pass@1) with its
interval and McNemar's p; task accuracy (the domain's own benchmarks); capability change (the mean
accuracy change over the other benchmarks); refusal rate on harmful requests and its change from the
reference (the reference's own safety or ``all`` run); probe retention (fact-probe accuracy at the
reference's best probe layer over the reference's, from ``suite=probes`` runs of both); and the attack
success rate of ``suite=attacks`` runs on the same model. Figures: the heatmap and the per-benchmark
change with error bars, the safety-vs-task Pareto front, safety change vs capability change (with
Pearson's and Spearman's r), forgetting vs scale, ASR and probe retention.
"""
from __future__ import annotations

import hashlib
import json
import math
from itertools import combinations

import mlflow
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from forgetting.analysis import noise
from forgetting.analysis.figures import size_label, size_order, with_sizes
from forgetting.analysis.query import ModelSizes, _registering
from forgetting.analysis.selective import study_runs

RATES = ["accuracy", "reference_accuracy", "delta", "forgetting_rate", "learning_rate"]
LINEAGE = ["method", "domain", "start"]
RUN_COLUMNS = ["model", "seed", "condition", *LINEAGE, "scale", "benchmark",
               *[c for rate in RATES for c in (rate, noise.low(rate), noise.high(rate))], "delta_mcnemar_p", "n",
               "run_id"]
COLUMNS = RUN_COLUMNS  # kept for callers of the per-run frame
CONDITION = ["condition", *LINEAGE, "scale"]
SUMMARY_VALUES = ["task_accuracy", "capability_change", "mean_forgetting_rate", "refusal_rate", "refusal_change",
                  "benign_compliance_rate", "probe_retention", "asr"]
SUMMARY_METRICS = ["mean_accuracy", "refusal_rate", "benign_compliance_rate", "self_bleu", "distinct_2", "length_mean",
                   "ece", "cka_mean", "weight_delta_effective_rank", "refusal_direction_retained"]
TABLE = "forgetting_results"
INTRO = ("Each row of the first table is one benchmark of one post-training condition against its start: a "
         "condition is a registered post-trained model and the settings that made it, all its seeds together. "
         "Every number is shown as <code>value [95% interval]</code>: with several seeds the mean over the seeds "
         "and a t interval over them, with one seed the interval its evaluation logged (Wilson for rates, "
         "McNemar-paired for the change). <code>delta</code> is the accuracy change (code benchmarks: pass@1); "
         "<code>noise</code> says whether its interval includes 0. <code>forgetting_rate</code> is the fraction "
         "of examples the start answered correctly and the model now gets wrong, <code>learning_rate</code> the "
         "reverse.", "Forgetting results")
LABELS = {"delta": "accuracy change vs start", "scale": "parameters", "task_accuracy": "accuracy on the domain's benchmarks",
          "refusal_rate": "refusal rate on harmful requests", "mean_forgetting_rate": "mean forgetting rate",
          "model_size": "model size", "capability_change": "capability change (mean accuracy change)",
          "refusal_change": "safety change (refusal-rate change)", "asr": "attack success rate",
          "probe_retention": "probe accuracy / reference's", "benchmark": "benchmark"}


PER_SEED = (noise.SEED, "register_as")  # parameters in which a condition's seeds differ by design


class Conditions:
    """What a model is apart from its seed, looked up once per model spec and once per collect run."""

    def __init__(self):
        self._known: dict[str, tuple[str, str, str]] = {}
        self._collected: dict[str, dict | str] = {}

    def __call__(self, spec: str) -> tuple[str, str, str]:
        """``(condition, name, training seed)`` of ``spec``: a registered model's name without the ``-seed<s>``
        of its training seed (``unlearning.seeded_name``) and a digest of its registering run's ``settings``;
        any other spec stands for itself."""
        if spec not in self._known:
            from forgetting.tracking.checkpoints import is_tracking_uri, registered_name

            params = _registering(spec)[1] if spec and is_tracking_uri(spec) else None
            if params is None:
                self._known[spec] = (spec, spec, "")
            else:
                seed, name = params.get(noise.SEED, ""), registered_name(spec)
                name = name.removesuffix(f"-seed{seed}") if seed not in ("", "0") else name
                digest = hashlib.sha1(json.dumps(self.settings(params), sort_keys=True).encode()).hexdigest()[:8]
                self._known[spec] = (f"{name}:{digest}", name, seed)
        return self._known[spec]

    def settings(self, params: dict) -> dict:
        """A registering run's parameters but ``PER_SEED``; the collect run it learned from (``data``, a run
        ID that every seed has its own of) as that run's parameters but ``PER_SEED``."""
        settings = {k: v for k, v in params.items() if k not in PER_SEED}
        if data := settings.get("data"):
            if data not in self._collected:
                collected = _registering(data)[1]
                self._collected[data] = data if collected is None else {
                    k: v for k, v in collected.items() if k not in PER_SEED}
            settings["data"] = self._collected[data]
        return settings


def _seed(run, conditions: Conditions) -> str:
    """The seed that tells a run apart from its condition's other runs: the training seed of the model
    where it was registered with one, and the evaluation's own seed where that differs."""
    trained, evaluated = conditions(run.data.params.get("model"))[2], run.data.params.get(noise.SEED, "")
    return "/".join(dict.fromkeys(s for s in (trained, evaluated) if s != "")) or "0"


def _newest(runs, suites: tuple[str, ...]):
    """The newest run of each (model, evaluation seed) among ``suites``."""
    seen = set()
    for run in runs:  # newest first
        key = (run.data.params.get("model"), run.data.params.get(noise.SEED))
        if run.data.params.get("suite") in suites and key not in seen:
            seen.add(key)
            yield run


def forgetting_runs(runs: list, sizes: ModelSizes | None = None, conditions: Conditions | None = None) -> pd.DataFrame:
    """One row per (model, seed, benchmark) from ``runs``, the study's evaluate runs, newest first; ``scale``
    is the model's parameter count (None where unknown)."""
    sizes, conditions = sizes or ModelSizes(), conditions or Conditions()
    rows = []
    for run in _newest(runs, ("forgetting", "all")):
        params, metrics = run.data.params, run.data.metrics
        lineage = {"model": params.get("model"), **{key: params.get(key) for key in LINEAGE}}
        identity = {"seed": _seed(run, conditions), "condition": conditions(params.get("model"))[0],
                    "scale": sizes.parameters(params.get("model"))}
        for benchmark in sorted(k.removesuffix("_forgetting_rate") for k in metrics if k.endswith("_forgetting_rate")):
            values = {column: metrics.get(f"{benchmark}_{column}") for column in RUN_COLUMNS[7:-1]}
            rows.append(lineage | identity | values | {"benchmark": benchmark, "run_id": run.info.run_id})
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def forgetting_results(runs: list, sizes: ModelSizes | None = None, conditions: Conditions | None = None) -> pd.DataFrame:
    """One row per (condition, benchmark): each rate's mean over seeds with its 95% interval."""
    return aggregate_results(forgetting_runs(runs, sizes, conditions))


def aggregate_results(per_run: pd.DataFrame) -> pd.DataFrame:
    frame = noise.over_seeds(per_run, [*CONDITION, "benchmark"], RATES,
                             keep={"model": lambda s: ", ".join(dict.fromkeys(s.astype(str))), "n": "sum"})
    if "delta_mcnemar_p" not in frame:
        frame["delta_mcnemar_p"] = math.nan
    frame["noise"] = [noise.verdict(lo, hi) for lo, hi in zip(frame["delta_ci_low"], frame["delta_ci_high"])]
    return frame


class References:
    """The newest FINISHED evaluate runs of other models (a post-trained model's reference), by suite; they
    are filed under whichever study the reference belongs to, so all experiments are searched."""

    def __init__(self):
        self._runs: dict[str, list] = {}

    def runs(self, model: str, suites: tuple[str, ...]) -> list:
        if not model:
            return []
        if model not in self._runs:
            query = ("tags.`forgetting.entry_point` = 'evaluate' and attributes.status = 'FINISHED' "
                     f"and params.model = '{model}'")
            self._runs[model] = mlflow.search_runs(search_all_experiments=True, filter_string=query,
                                                   order_by=["attributes.start_time DESC"], output_format="list")
        return [run for run in self._runs[model] if run.data.params.get("suite") in suites]


def model_summary(runs: list, per_run: pd.DataFrame, conditions: Conditions | None = None,
                  references: References | None = None, sizes: ModelSizes | None = None) -> pd.DataFrame:
    """One row per post-trained model and seed: its task accuracy (the domain's held-out benchmarks),
    capability change and mean forgetting rate over the other benchmarks, safety (and its change from the
    reference), probe retention, attack success, and the policy and representation metrics, each with
    the interval its runs logged (a mean over benchmarks combines theirs as independent estimates)."""
    from forgetting.rewards.domains import DOMAINS

    conditions, references = conditions or Conditions(), references or References()
    rows: dict[tuple, dict] = {}
    for suite in ("forgetting", "safety", "policy", "representation", "probes", "attacks", "all"):
        for run in _newest(runs, (suite,)):
            params, metrics = run.data.params, run.data.metrics
            row = rows.setdefault((params["model"], params.get(noise.SEED)), {
                "model": params["model"], "seed": _seed(run, conditions), "condition": conditions(params["model"])[0],
                **{key: params.get(key) for key in LINEAGE}, "reference": "", "run_id": ""})
            row["run_id"] = ",".join(filter(None, [row["run_id"], run.info.run_id]))
            row |= {key: row[key] or params.get(key) for key in (*LINEAGE, "reference")}  # probes/attacks lack some
            row |= {key: metrics[key] for name in SUMMARY_METRICS for key in (name, noise.low(name), noise.high(name))
                    if key in metrics}
            if suite == "probes" or "best_layer_accuracy" in metrics:
                row["_probe_run"] = run
            if suite == "attacks" and "asr" not in row:
                row |= noise.logged(metrics, ["asr"]) | {"attack": params.get("attack")}
    summary = pd.DataFrame(list(rows.values()))
    if summary.empty:
        return pd.DataFrame(columns=["model", "seed", "condition", *LINEAGE, "scale", *SUMMARY_VALUES])
    for column in ["model", "seed", "condition", *LINEAGE, "reference", "scale", *SUMMARY_METRICS, "asr", "asr_ci_low",
                   "asr_ci_high", "_probe_run"]:
        if column not in summary:
            summary[column] = None
    sizes = sizes or ModelSizes()
    summary["scale"] = [sizes.parameters(model) for model in summary["model"]]
    derived = []
    for row in summary.to_dict("records"):
        mine = per_run[(per_run["model"] == row["model"]) & (per_run["seed"] == row["seed"])]
        domain = DOMAINS.get(row["domain"])
        own = mine["benchmark"].isin(domain.eval_tasks if domain else ())
        values = {}
        for name, part, column in (("task_accuracy", mine[own], "accuracy"),
                                   ("capability_change", mine[~own], "delta"),
                                   ("mean_forgetting_rate", mine[~own], "forgetting_rate")):
            centre, lo, hi = noise.combine(part[column], part[noise.low(column)], part[noise.high(column)])
            values |= {name: centre, noise.low(name): lo, noise.high(name): hi}
        values |= _reference_changes(row, references)
        derived.append(values)
    summary = pd.concat([summary.drop(columns=["_probe_run"]), pd.DataFrame(derived, index=summary.index)], axis=1)
    return summary


def _reference_changes(row: dict, references: References) -> dict:
    """Refusal-rate change and probe retention of one model against its reference's own runs."""
    out = {name: math.nan for value in ("refusal_change", "probe_retention")
           for name in (value, noise.low(value), noise.high(value))}
    reference = row.get("reference") or ""
    safety = references.runs(reference, ("safety", "all"))
    if safety and not _missing(row.get("refusal_rate")):
        theirs = safety[0].data.metrics
        change = noise.difference(_triple(row, "refusal_rate"), _triple(theirs, "refusal_rate"))
        out |= dict(zip(("refusal_change", "refusal_change_ci_low", "refusal_change_ci_high"), change))
        out["reference_refusal_rate"] = theirs.get("refusal_rate")
    probe_run, reference_probes = row.get("_probe_run"), references.runs(reference, ("probes",))
    if hasattr(probe_run, "info") and reference_probes:  # a Run (NaN in rows without one)
        retention = probe_retention(probe_run, reference_probes[0])
        out |= dict(zip(("probe_retention", "probe_retention_ci_low", "probe_retention_ci_high"), retention))
    return out


def probe_retention(run, reference_run) -> tuple[float, float, float]:
    """The model's fact-probe accuracy at the reference's best probe layer over the reference's accuracy
    there, with an interval from both accuracies' logged intervals (``probe_accuracy_ci_*`` per layer)."""
    client = mlflow.MlflowClient()
    layer = int(reference_run.data.metrics["best_layer"])

    def at_layer(run_id: str) -> tuple[float, float, float]:
        values = []
        for name in ("probe_accuracy", "probe_accuracy_ci_low", "probe_accuracy_ci_high"):
            points = [m for m in client.get_metric_history(run_id, name) if m.step == layer]
            values.append(max(points, key=lambda m: m.timestamp).value if points else math.nan)
        return tuple(values)

    return noise.ratio(at_layer(run.info.run_id), at_layer(reference_run.info.run_id))


def condition_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The model summary aggregated over seeds: one row per condition."""
    values = [*SUMMARY_VALUES, *(m for m in SUMMARY_METRICS if m not in SUMMARY_VALUES)]
    return noise.over_seeds(summary, CONDITION, values,
                            keep={"model": lambda s: ", ".join(dict.fromkeys(s.astype(str)))})


def method_comparisons(results: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Every pair of conditions of the same domain, start and scale: the difference of their accuracy
    change on each benchmark and of their capability change, with its interval and noise verdict."""
    rows = []
    scope = ["domain", "start", "scale"]
    measures = [(results, "benchmark", "delta"), (summary.assign(benchmark="(mean of the others)"), "benchmark",
                                                  "capability_change")]
    for frame, by, value in measures:
        if frame.empty:
            continue
        for key, group in frame.groupby([*scope, by], dropna=False, sort=False):
            for (_, a), (_, b) in combinations(group.iterrows(), 2):
                diff = noise.difference(_triple(a, value), _triple(b, value))
                if _missing(diff[0]):
                    continue
                rows.append(dict(zip([*scope, "benchmark"], key)) | {
                    "measure": value, "method_a": _label(a), "method_b": _label(b),
                    "a": noise.shown(*_triple(a, value), signed=True), "b": noise.shown(*_triple(b, value), signed=True),
                    "difference": diff[0], "difference_ci_low": diff[1], "difference_ci_high": diff[2],
                    "noise": noise.verdict(diff[1], diff[2])})
    return pd.DataFrame(rows, columns=[*scope, "benchmark", "measure", "method_a", "method_b", "a", "b", "difference",
                                       "difference_ci_low", "difference_ci_high", "noise"])


def _label(row) -> str:
    """A condition in prose: its method, and its registered name when two share a method."""
    name = str(row["condition"]).split(":")[0]
    return f"{row['method']} ({name})" if name and name != row["method"] else str(row["method"])


def _triple(row, name: str) -> tuple:
    get = row.get if hasattr(row, "get") else (lambda k: row[k] if k in row else None)
    return get(name), get(noise.low(name)), get(noise.high(name))


def _sized(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with ``model_size`` (the label of its ``scale``) and the sizes from the smallest."""
    frame = with_sizes(frame.assign(parameters=pd.to_numeric(frame["scale"], errors="coerce")))
    return frame, size_order(frame)


def _rows(frame: pd.DataFrame, sizes: list[str]) -> tuple[pd.DataFrame, str, dict]:
    """A facet row per start, and per model size when there are several."""
    row, orders = "start", {"start": sorted(frame["start"].dropna().astype(str).unique())}
    if len(sizes) > 1:
        row = "start · model size"
        frame = frame.assign(**{row: frame["start"].astype(str) + " · " + frame["model_size"]})
        orders[row] = [f"{start} · {size}" for start in orders["start"] for size in sizes
                       if f"{start} · {size}" in set(frame[row])]
    return frame, row, orders


def heatmap_figure(results: pd.DataFrame) -> go.Figure | None:
    """Accuracy change per method and benchmark, a column per domain, a row per start (and per model size
    when there are several, so models of different sizes are never averaged together). The intervals are
    in ``delta_figure`` and the table."""
    if results.empty:
        return None
    frame, sizes = _sized(results)
    frame, row, orders = _rows(frame, sizes)
    return px.density_heatmap(frame, x="benchmark", y="method", z="delta", histfunc="avg", facet_col="domain",
                              facet_row=row, category_orders=orders, color_continuous_scale="RdBu",
                              color_continuous_midpoint=0, labels=LABELS,
                              title="Forgetting: accuracy change vs the start (method × domain × benchmark)")


def delta_figure(results: pd.DataFrame) -> go.Figure | None:
    """Accuracy change per benchmark and condition with its 95% interval as error bars."""
    frame = results.dropna(subset=["delta"])
    if frame.empty:
        return None
    frame, sizes = _sized(frame)
    frame, row, orders = _rows(frame, sizes)
    frame = frame.assign(noise=frame["noise"].fillna(""))
    figure = px.scatter(frame, x="benchmark", y="delta", color="method", facet_col="domain", facet_row=row,
                        category_orders=orders, labels=LABELS, **noise.y_errors(frame, "delta"),
                        hover_data=["model", "n_seeds", "noise"],
                        title="Accuracy change vs the start with 95% intervals (bars crossing 0: within noise)")
    figure.add_hline(y=0, line_dash="dot", line_color="grey")
    figure.update_traces(marker_size=9)
    return figure


def pareto_front(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The points no other point beats on both ``x`` and ``y`` (higher is better), sorted by ``x``."""
    ordered = frame.sort_values([x, y], ascending=False)
    front, best = [], float("-inf")
    for index, row in ordered.iterrows():
        if row[y] > best:
            front.append(index)
            best = row[y]
    return frame.loc[front].sort_values(x)


def pareto_figure(summary: pd.DataFrame) -> go.Figure | None:
    """Refusal rate vs task accuracy per condition with both intervals as error bars; with several model
    sizes a column and a Pareto front (of the means) per size."""
    frame = summary.dropna(subset=["task_accuracy", "refusal_rate"])
    if frame.empty:
        return None
    frame, sizes = _sized(frame)
    column = "model_size" if len(sizes) > 1 else None
    figure = px.scatter(frame, x="task_accuracy", y="refusal_rate", color="method", symbol="start", facet_col=column,
                        category_orders={"model_size": sizes}, hover_data=["model", "domain", "scale", "n_seeds"],
                        labels=LABELS, title="Safety vs task: the Pareto front (error bars: 95% intervals)",
                        **noise.x_errors(frame, "task_accuracy"), **noise.y_errors(frame, "refusal_rate"))
    for position, size in enumerate(sizes if column else [None], start=1):
        front = pareto_front(frame[frame["model_size"] == size] if column else frame, "task_accuracy", "refusal_rate")
        figure.add_trace(go.Scatter(x=front["task_accuracy"], y=front["refusal_rate"], mode="lines",
                                    line={"dash": "dot", "color": "grey"}, name="Pareto front",
                                    showlegend=position == 1), **({"row": 1, "col": position} if column else {}))
    if column:
        figure.for_each_annotation(lambda a: a.update(text=a.text.replace("=", ": ")))
    return figure


def safety_capability_figure(summary: pd.DataFrame, correlation: dict) -> go.Figure | None:
    """Safety change (refusal-rate change from the reference) against capability change, one point per
    condition with both intervals; the title carries the correlation across them."""
    frame = summary.dropna(subset=["capability_change", "refusal_change"])
    if frame.empty:
        return None
    frame, _ = _sized(frame)
    r = correlation
    stated = (f"Pearson r={noise.shown(r['pearson_r'], r['pearson_ci_low'], r['pearson_ci_high'], signed=True)}, "
              f"Spearman ρ={r['spearman_r']:+.2f}, n={r['n']}" if not _missing(r["pearson_r"]) else r["note"])
    figure = px.scatter(frame, x="capability_change", y="refusal_change", color="method", symbol="model_size",
                        hover_data=["model", "domain", "start", "n_seeds"], labels=LABELS,
                        title=f"Safety loss vs capability loss across methods ({stated})",
                        **noise.x_errors(frame, "capability_change"), **noise.y_errors(frame, "refusal_change"))
    figure.add_hline(y=0, line_dash="dot", line_color="grey")
    figure.add_vline(x=0, line_dash="dot", line_color="grey")
    figure.update_traces(marker_size=10)
    return figure


def measure_figure(summary: pd.DataFrame, value: str, title: str) -> go.Figure | None:
    """One bar per condition of ``value`` with its interval, a column per domain."""
    frame = summary.dropna(subset=[value])
    if frame.empty:
        return None
    frame, sizes = _sized(frame)
    frame = frame.assign(condition_label=[f"{m} · {s} · {size}" for m, s, size in
                                          zip(frame["method"], frame["start"], frame["model_size"])])
    return px.bar(frame, x="condition_label", y=value, color="method", facet_col="domain", labels=LABELS
                  | {"condition_label": "method · start · size"}, hover_data=["model", "n_seeds"], title=title,
                  **noise.y_errors(frame, value))


def scale_figure(summary: pd.DataFrame) -> go.Figure | None:
    """Mean forgetting rate against the parameter count with 95% intervals: one point per model size, a
    line per method and domain, a column per start (conditions of one size and method are averaged)."""
    frame = summary.dropna(subset=["scale", "mean_forgetting_rate"])
    if frame.empty:
        return None
    frame = frame.assign(scale=pd.to_numeric(frame["scale"]), seed=frame["condition"])
    # sorted before y_errors adds its error columns to this frame: the plotted frame must have them
    frame = noise.over_seeds(frame, ["start", "method", "domain", "scale"], ["mean_forgetting_rate"],
                             keep={"model": lambda s: ", ".join(dict.fromkeys(s.astype(str)))}).sort_values("scale")
    figure = px.line(frame, x="scale", y="mean_forgetting_rate", color="method",
                     line_dash="domain", facet_col="start", markers=True, log_x=True, hover_data=["model"],
                     labels=LABELS, title="Forgetting vs model scale (one point per model size, 95% intervals)",
                     **noise.y_errors(frame, "mean_forgetting_rate"))
    figure.for_each_annotation(lambda a: a.update(text=a.text.replace("=", ": ")))
    return figure


def display_tables(frames: dict) -> dict[str, pd.DataFrame]:
    """The report's tables as display strings: ``value [low, high]`` for every measured number."""
    results, conditions, comparisons = frames[TABLE], frames["condition_summary"], frames["method_comparisons"]
    tables = {}
    if not results.empty:
        shown = pd.DataFrame({
            "model": results["model"], "method": results["method"], "domain": results["domain"],
            "start": results["start"], "size": results["scale"].map(size_label), "benchmark": results["benchmark"],
            "seeds": results["n_seeds"],
            **{rate: [noise.shown(*t, signed=rate == "delta") for t in
                      zip(results[rate], results[noise.low(rate)], results[noise.high(rate)])] for rate in RATES},
            "noise": [f"{v} (McNemar p={p:.3g})" if v and not _missing(p) else v
                      for v, p in zip(results["noise"], results["delta_mcnemar_p"])]})
        tables["Forgetting results"] = shown
    if not conditions.empty:
        tables["Per condition (mean over seeds)"] = pd.DataFrame({
            "model": conditions["model"], "method": conditions["method"], "domain": conditions["domain"],
            "start": conditions["start"], "size": conditions["scale"].map(size_label), "seeds": conditions["n_seeds"],
            **{LABELS.get(v, v): [noise.shown(*t, signed=v.endswith("change")) for t in
                                  zip(conditions[v], conditions[noise.low(v)], conditions[noise.high(v)])]
               for v in SUMMARY_VALUES}})
    if not comparisons.empty:
        tables["Method against method"] = pd.DataFrame({
            "domain": comparisons["domain"], "start": comparisons["start"], "size": comparisons["scale"].map(size_label),
            "benchmark": comparisons["benchmark"], "A": comparisons["method_a"], "A's change": comparisons["a"],
            "B": comparisons["method_b"], "B's change": comparisons["b"],
            "A − B": [noise.shown(*t, signed=True) for t in zip(comparisons["difference"], comparisons["difference_ci_low"],
                                                               comparisons["difference_ci_high"])],
            "noise": comparisons["noise"]})
    return tables


def findings(results: pd.DataFrame, conditions: pd.DataFrame, comparisons: pd.DataFrame, correlation: dict) -> list[str]:
    """What the numbers say about noise, in words."""
    said = []
    if not results.empty:
        judged = results[results["noise"] != ""]
        beyond = judged[judged["noise"] == noise.BEYOND]
        said.append(f"{len(beyond)} of {len(judged)} accuracy changes (condition × benchmark) are beyond noise "
                    "(their 95% interval excludes 0); the others are within noise.")
        said += [f"{r['method']} on {r['benchmark']} ({r['domain']}, start {r['start']}, {size_label(r['scale'])}): "
                 f"{noise.shown(r['delta'], r['delta_ci_low'], r['delta_ci_high'], signed=True)}, beyond noise"
                 + (f" (McNemar p={r['delta_mcnemar_p']:.3g})" if not _missing(r["delta_mcnemar_p"]) else "")
                 for _, r in beyond.iterrows()]
        several = int((results.drop_duplicates("condition")["n_seeds"] > 1).sum())
        said.append(f"{several} of {results['condition'].nunique()} conditions have several seeds (mean and t "
                    "interval over seeds); the others show the interval of their single run.")
    for _, r in comparisons[comparisons["measure"] == "capability_change"].iterrows():
        said.append(f"Capability change, {r['method_a']} vs {r['method_b']} ({r['domain']}, start {r['start']}, "
                    f"{size_label(r['scale'])}): {r['a']} vs {r['b']}, difference "
                    f"{noise.shown(r['difference'], r['difference_ci_low'], r['difference_ci_high'], signed=True)}: "
                    f"{r['noise']}.")
    said.append(noise.describe_correlation(correlation, "Safety loss (refusal-rate change) vs capability loss "
                                                        "(mean accuracy change) across conditions"))
    return said


def absence_notes(summary: pd.DataFrame) -> list[str]:
    notes = []
    if summary.empty:
        return notes
    if summary["asr"].isna().all():
        notes.append("No FINISHED evaluate runs with suite=attacks on the evaluated models: no attack success "
                     "rate (run evaluate -P suite=attacks on each post-trained model).")
    if summary["probe_retention"].isna().all():
        notes.append("No probe retention: it needs evaluate -P suite=probes runs of both the post-trained model "
                     "and its reference.")
    if summary["refusal_change"].isna().all():
        notes.append("No safety change: the references have no FINISHED evaluate run with suite=safety (or all).")
    return notes


def collect(study: str) -> tuple[dict, dict, dict, list[str], list[str]]:
    """``(frames, figures, counts, notes, findings)`` of the forgetting study."""
    runs = study_runs(study, "evaluate")
    conditions = Conditions()
    sizes = ModelSizes()
    per_run = forgetting_runs(runs, sizes, conditions)
    results = aggregate_results(per_run)
    summary = model_summary(runs, per_run, conditions, sizes=sizes)
    by_condition = condition_summary(summary)
    comparisons = method_comparisons(results, by_condition)
    correlation = noise.correlation(by_condition["capability_change"], by_condition["refusal_change"]) \
        if not by_condition.empty else noise.correlation([], [])
    drawn = {"forgetting_heatmap": heatmap_figure(results), "forgetting_delta": delta_figure(results),
             "safety_vs_task_pareto": pareto_figure(by_condition),
             "safety_vs_capability": safety_capability_figure(by_condition, correlation),
             "forgetting_vs_scale": scale_figure(by_condition),
             "attack_success": measure_figure(by_condition, "asr", "Attack success rate per condition (95% intervals)"),
             "probe_retention": measure_figure(by_condition, "probe_retention",
                                               "Fact-probe accuracy relative to the reference (95% intervals)")}
    notes = [] if not results.empty else [
        f"No FINISHED evaluate runs with suite=forgetting (or all) and a reference in study {study!r}."]
    notes += absence_notes(summary)
    counts = {"n_evaluated_models": int(per_run["model"].nunique())}
    frames = {TABLE: results, "forgetting_runs": per_run, "model_summary": summary, "condition_summary": by_condition,
              "method_comparisons": comparisons, "correlation": pd.DataFrame([correlation])}
    return frames, drawn, counts, notes, findings(results, by_condition, comparisons, correlation)


def _missing(value) -> bool:
    return noise._missing(value)
