"""The forgetting study's evaluation suites: safety, policy, representation and all."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from forgetting.errors import UsageError
from forgetting.evaluation.policy_suite import distinct_n, expected_calibration_error, self_bleu
from forgetting.evaluation.representation_suite import (effective_rank, linear_cka, refusal_directions,
                                                        weight_delta_rows)
from forgetting.evaluation.safety_suite import safety_metrics
from forgetting.evaluation.suites import EvaluateConfig


def test_linear_cka_is_one_under_rotation_and_scale_and_low_for_unrelated_features():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=generator)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16, generator=generator))
    assert linear_cka(x, 3 * x @ rotation) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, torch.randn(200, 16, generator=generator)) < 0.2


def test_effective_rank_counts_equal_directions():
    assert effective_rank(torch.ones(8)) == pytest.approx(8.0)
    assert effective_rank(torch.tensor([5.0, 0.0, 0.0])) == pytest.approx(1.0)


def test_weight_delta_of_a_rank_one_edit_has_rank_one_and_skips_pruned_shapes(tiny_checkpoint):
    from forgetting.models.tiny import tiny_llama
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    edited = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    weight = edited.model.layers[0].mlp.up_proj.weight
    with torch.no_grad():
        weight += 0.1 * torch.outer(torch.randn(weight.shape[0]), torch.randn(weight.shape[1]))
    rows, skipped = weight_delta_rows(edited, reference)
    by_name = {row["matrix"]: row for row in rows}
    assert skipped == 0 and len(rows) == 7 * len(reference.model.layers)
    changed = by_name["model.layers.0.mlp.up_proj.weight"]
    assert changed["effective_rank"] == pytest.approx(1.0, abs=1e-3) and changed["top1_energy"] == pytest.approx(1.0)
    assert all(row["relative_norm"] == 0 for name, row in by_name.items() if name != changed["matrix"])
    narrower = tiny_llama(intermediate_size=reference.config.intermediate_size // 2)
    _, skipped = weight_delta_rows(narrower, reference)
    assert skipped == 3 * len(reference.model.layers)  # gate, up and down of every layer


def test_refusal_direction_is_the_difference_of_means():
    states = torch.zeros(2, 4, 3)
    states[1, :2, 0] = 2.0  # layer 1: harmful rows sit at +2 on the first axis
    states[1, :, 1] = torch.tensor([1.0, -1.0, 1.0, -1.0])
    difference, separation = refusal_directions(states, harmful=2)
    assert difference[1].tolist() == [2.0, 0.0, 0.0] and difference[0].tolist() == [0.0, 0.0, 0.0]
    assert separation[1] > separation[0]


def test_policy_measures():
    assert distinct_n(["a b a b"], 1) == 0.5 and distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert self_bleu([["the cat sat on the mat"] * 3]) == pytest.approx(1.0)
    assert self_bleu([["the cat sat on the mat", "a dog ran in the park today"]]) < 0.2
    assert expected_calibration_error([0.9] * 10, [1] * 9 + [0]) == pytest.approx(0.0)
    assert expected_calibration_error([0.95, 0.95, 0.15, 0.15], [0, 0, 1, 1]) == pytest.approx(0.9)


def test_safety_rates():
    rows = [{"kind": "harmful", "refused": True}, {"kind": "harmful", "refused": False},
            {"kind": "benign", "refused": False}, {"kind": "benign", "refused": False}, {"kind": "benign", "refused": True}]
    metrics = safety_metrics(rows)
    assert {k: metrics[k] for k in ("refusal_rate", "benign_compliance_rate", "n_harmful", "n_benign")} == {
        "refusal_rate": 0.5, "benign_compliance_rate": pytest.approx(2 / 3), "n_harmful": 2, "n_benign": 3}
    assert metrics["refusal_rate_ci_low"] < 0.5 < metrics["refusal_rate_ci_high"]


@pytest.mark.parametrize("change, message", [
    ({"suite": "representation"}, "give reference="),
    ({"suite": "all"}, "give reference="),
    ({"suite": "policy", "generation_task": "arc_easy"}, "generation_task='arc_easy' is not a generative"),
    ({"suite": "policy", "calibration_task": "gsm8k"}, "calibration_task='gsm8k' is not a multiple-choice"),
    ({"suite": "policy", "samples": 1}, "samples=1 must be at least 2"),
    ({"suite": "safety", "behaviours": "toxicity"}, "behaviours='toxicity' is not one of"),
])
def test_bad_suite_parameters_fail_in_one_line(change, message):
    with pytest.raises(UsageError, match=message):
        EvaluateConfig(**change).validate()


def test_all_suites_on_a_model_against_itself_give_identity_values(store, tiny_checkpoint_with_tokenizer):
    import mlflow

    from forgetting.stages import evaluate_stage

    model = str(tiny_checkpoint_with_tokenizer)
    config = EvaluateConfig(model=model, reference=model, suite="all", limit=3, samples=2, max_new_tokens=4,
                            benchmarks="arc_easy,gsm8k", batch_size=4)
    config.validate()
    run = evaluate_stage(config, study="forgetting")
    metrics = run.data.metrics
    assert metrics["cka_mean"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["refusal_direction_retained"] == pytest.approx(1.0, abs=1e-4)
    assert metrics["weight_delta_relative_norm"] == 0 and metrics["n_matrices_skipped"] == 0
    assert metrics["arc_easy_n_correct_to_incorrect"] == metrics["arc_easy_n_incorrect_to_correct"] == 0
    assert metrics["n_harmful"] == metrics["n_benign"] == 3 and 0 <= metrics["refusal_rate"] <= 1
    assert metrics["n_replies"] == 6 and metrics["length_mean"] <= 4
    assert 0 <= metrics["ece"] <= 1 and not math.isnan(metrics["distinct_1"])
    cka = mlflow.MlflowClient().get_metric_history(run.info.run_id, "cka")
    assert sorted(point.step for point in cka) == list(range(len(cka))) and len(cka) >= 2
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "safety")}
    assert artifacts == {"safety/responses.json"}


def log_evaluation(model: str, method: str, domain: str, suite: str, metrics: dict) -> None:
    import mlflow

    from forgetting.tracking import experiment_id

    with mlflow.start_run(experiment_id=experiment_id("forgetting"),
                          tags={"forgetting.entry_point": "evaluate", "forgetting.study": "forgetting"}):
        mlflow.log_params({"model": model, "method": method, "domain": domain, "start": "base", "suite": suite})
        mlflow.log_metrics(metrics)


def test_forgetting_analysis_joins_suites_per_model_and_finds_the_pareto_front(store):
    from forgetting.analysis.forgetting import collect, pareto_front

    transitions = lambda gsm8k, arc: {  # noqa: E731 - accuracy, forgetting rate of two benchmarks
        "gsm8k_accuracy": gsm8k, "gsm8k_delta": 0.1, "gsm8k_forgetting_rate": 0.0, "gsm8k_learning_rate": 0.1,
        "gsm8k_reference_accuracy": gsm8k - 0.1, "gsm8k_n": 10, "arc_easy_accuracy": arc, "arc_easy_delta": -0.2,
        "arc_easy_forgetting_rate": 0.3, "arc_easy_learning_rate": 0.1, "arc_easy_reference_accuracy": arc + 0.2,
        "arc_easy_n": 10}
    log_evaluation("models:/m-gt-sft-math@posttrained", "gt-sft", "math", "forgetting", transitions(0.4, 0.5))
    log_evaluation("models:/m-gt-sft-math@posttrained", "gt-sft", "math", "safety", {"refusal_rate": 0.2})
    log_evaluation("models:/m-on-rl-math@posttrained", "on-rl", "math", "all",
                   transitions(0.3, 0.6) | {"refusal_rate": 0.7, "cka_mean": 0.9})
    frames, figures, counts, notes, _ = collect("forgetting")
    results, summary = frames["forgetting_results"], frames["model_summary"].set_index("model")
    assert counts == {"n_evaluated_models": 2} and len(results) == 4
    assert not [note for note in notes if "suite=forgetting" in note]
    assert set(results["benchmark"]) == {"gsm8k", "arc_easy"}
    sft = summary.loc["models:/m-gt-sft-math@posttrained"]
    assert sft["task_accuracy"] == 0.4 and sft["mean_forgetting_rate"] == 0.3 and sft["refusal_rate"] == 0.2
    assert summary.loc["models:/m-on-rl-math@posttrained", "cka_mean"] == 0.9
    assert all(figures[name] is not None for name in ("forgetting_heatmap", "safety_vs_task_pareto"))
    front = pareto_front(summary.reset_index(), "task_accuracy", "refusal_rate")
    assert list(front["method"]) == ["on-rl", "gt-sft"]  # neither beats the other on both axes
    points = pd.DataFrame({"x": [1, 2, 3], "y": [3, 1, 2]})
    assert pareto_front(points, "x", "y").to_dict("list") == {"x": [1, 3], "y": [3, 2]}


def test_forgetting_suite_scores_code_by_running_each_completion_against_the_tests(monkeypatch,
                                                                                  tiny_checkpoint_with_tokenizer):
    """HumanEval in the forgetting suite is pass@1 from the sandbox, per problem, so transitions work on it."""
    from forgetting.data import load_task
    from forgetting.evaluation import forgetting_suite
    from forgetting.scoring import generation
    from forgetting.evaluation.transitions import transition_metrics, transition_table

    config = EvaluateConfig(model=str(tiny_checkpoint_with_tokenizer), suite="forgetting", benchmarks="humaneval,arc_easy",
                            limit=3, max_new_tokens=8, batch_size=2)
    config.validate()  # a code task is a benchmark the suite accepts
    rows = list(load_task("humaneval", "eval", seed=0, limit=3))
    by_prompt = {row["prompt"]: row for row in rows}
    wrong = rows[0]["prompt"]

    def engine(model, tokenizer, batch_size, precision):  # the canonical solution, except for one problem
        return lambda prompts, max_new_tokens, stop: (
            ["    return None\n" if p == wrong else by_prompt[p]["canonical_solution"] for p in prompts], 0)

    monkeypatch.setattr(generation, "greedy_engine", engine)
    examples = pd.DataFrame(forgetting_suite.score_code_benchmark(config.model, "humaneval", rows, config))
    assert examples["correct"].tolist() == [False, True, True]  # the sandbox ran the tests
    reference = examples.assign(correct=[True, False, False])
    metrics = transition_metrics(transition_table(examples, reference))
    assert metrics["humaneval_accuracy"] == pytest.approx(2 / 3) and metrics["humaneval_delta"] == pytest.approx(1 / 3)
    assert metrics["humaneval_n_correct_to_incorrect"] == 1 and 0 < metrics["humaneval_delta_mcnemar_p"] <= 1
    with pytest.raises(UsageError, match="benchmarks='facts'"):
        EvaluateConfig(suite="forgetting", benchmarks="facts").validate()


def rates(prefix: str, value: float, low: float, high: float) -> dict:
    return {prefix: value, f"{prefix}_ci_low": low, f"{prefix}_ci_high": high}


def forgetting_metrics(arc_delta: float, gsm8k: float, half: float = 0.06, p: float = 0.5) -> dict:
    """A forgetting run's metrics on gsm8k (the math domain's own benchmark) and arc_easy."""
    return {**rates("gsm8k_accuracy", gsm8k, gsm8k - 0.1, gsm8k + 0.1), **rates("gsm8k_delta", 0.1, 0.02, 0.18),
            "gsm8k_forgetting_rate": 0.0,
            "gsm8k_learning_rate": 0.1, **rates("arc_easy_accuracy", 0.5 + arc_delta, 0.4 + arc_delta, 0.6 + arc_delta),
            **rates("arc_easy_delta", arc_delta, arc_delta - half, arc_delta + half), "arc_easy_delta_mcnemar_p": p,
            **rates("arc_easy_forgetting_rate", -arc_delta, -arc_delta - 0.05, -arc_delta + 0.05),
            "arc_easy_learning_rate": 0.0, "arc_easy_reference_accuracy": 0.5, "arc_easy_n": 100, "gsm8k_n": 100}


def log_run(model: str, suite: str, metrics: dict, study: str = "forgetting", history: dict | None = None, **params):
    import mlflow

    from forgetting.tracking import experiment_id

    with mlflow.start_run(experiment_id=experiment_id(study),
                          tags={"forgetting.entry_point": "evaluate", "forgetting.study": study}):
        mlflow.log_params({"model": model, "suite": suite, "seed": 0, **params})
        mlflow.log_metrics(metrics)
        for name, points in (history or {}).items():
            for step, value in points.items():
                mlflow.log_metric(name, value, step=step)


def test_forgetting_profile_aggregates_seeds_and_keeps_every_interval(store, tmp_path):
    """Two seeds of one condition become one row with a t interval over them; single-seed conditions keep
    their logged intervals; safety change, probe retention, ASR and the correlation join in."""
    from scipy import stats

    from forgetting.analysis import noise
    from forgetting.analysis.forgetting import collect, display_tables

    reference, lineage = "base-model", {"domain": "math", "start": "base", "reference": "base-model"}
    log_run(reference, "safety", rates("refusal_rate", 0.8, 0.7, 0.9), study="foundation")
    layer_history = {"probe_accuracy": {1: 0.6, 2: 0.9}, "probe_accuracy_ci_low": {2: 0.8},
                     "probe_accuracy_ci_high": {2: 0.95}}
    log_run(reference, "probes", {"best_layer": 2}, study="foundation", history=layer_history)
    sft = "models:/m-gt-sft-math@posttrained"
    for seed, delta in ((0, -0.2), (1, -0.24)):
        log_run(sft, "all", forgetting_metrics(delta, 0.4) | rates("refusal_rate", 0.5, 0.4, 0.6), method="gt-sft",
                **lineage | {"seed": seed})
    log_run(sft, "probes", {"best_layer": 1}, method="gt-sft", history={
        "probe_accuracy": {2: 0.45}, "probe_accuracy_ci_low": {2: 0.35}, "probe_accuracy_ci_high": {2: 0.55}})
    log_run("models:/m-on-rl-math@posttrained", "all", forgetting_metrics(-0.02, 0.3, p=0.6)
            | rates("refusal_rate", 0.75, 0.65, 0.85), method="on-rl", **lineage)
    log_run("models:/m-on-rl-math@posttrained", "attacks", rates("asr", 0.4, 0.3, 0.5), method="on-rl", attack="gcg")
    log_run("models:/m-off-rl-math@posttrained", "all", forgetting_metrics(-0.1, 0.35, half=0.03)
            | rates("refusal_rate", 0.6, 0.5, 0.7), method="off-rl", **lineage)

    frames, drawn, counts, notes, said = collect("forgetting")
    results = frames["forgetting_results"].set_index(["method", "benchmark"])
    sft_arc = results.loc[("gt-sft", "arc_easy")]
    assert sft_arc["n_seeds"] == 2 and sft_arc["seeds"] == "0,1" and sft_arc["delta"] == pytest.approx(-0.22)
    half = stats.t.ppf(0.975, 1) * np.std([-0.2, -0.24], ddof=1) / np.sqrt(2)
    assert (sft_arc["delta_ci_low"], sft_arc["delta_ci_high"]) == pytest.approx((-0.22 - half, -0.22 + half))
    assert sft_arc["noise"] == noise.WITHIN  # two seeds apart by 0.04: a t interval with 1 degree of freedom is wide
    rl_arc = results.loc[("on-rl", "arc_easy")]
    assert rl_arc["n_seeds"] == 1 and (rl_arc["delta_ci_low"], rl_arc["delta_ci_high"]) == pytest.approx((-0.08, 0.04))
    assert rl_arc["delta_mcnemar_p"] == 0.6 and results.loc[("off-rl", "arc_easy"), "noise"] == noise.BEYOND
    assert counts == {"n_evaluated_models": 3}

    shown = display_tables(frames)["Forgetting results"].set_index(["method", "benchmark"])
    assert shown.loc[("on-rl", "arc_easy"), "delta"] == "-0.020 [-0.08, 0.04]"
    assert shown.loc[("on-rl", "arc_easy"), "noise"] == "within noise (McNemar p=0.6)"
    assert shown.loc[("gt-sft", "arc_easy"), "accuracy"].count("[") == 1

    conditions = frames["condition_summary"].set_index("method")
    assert conditions.loc["gt-sft", "refusal_change"] == pytest.approx(-0.3)
    assert conditions.loc["on-rl", "refusal_change_ci_low"] < -0.05 < conditions.loc["on-rl", "refusal_change_ci_high"]
    assert conditions.loc["gt-sft", "probe_retention"] == pytest.approx(0.5)  # at the reference's best layer, 2
    assert conditions.loc["on-rl", "asr"] == 0.4 and conditions.loc["on-rl", "asr_ci_high"] == 0.5
    assert conditions.loc["off-rl", "capability_change"] == pytest.approx(-0.1)
    assert not [note for note in notes if "attack success" in note or "probe retention" in note]

    correlation = frames["correlation"].iloc[0]
    assert correlation["n"] == 3 and not np.isnan(correlation["pearson_r"]) and np.isnan(correlation["pearson_ci_low"])
    assert any("Pearson r" in line and "needs at least 4 points" in line for line in said)
    assert any("on-rl" in line and "gt-sft" in line and "noise" in line for line in said)  # method vs method
    assert any(line.startswith("4 of 6 accuracy changes") for line in said)  # gsm8k everywhere, off-rl on arc_easy

    delta = drawn["forgetting_delta"]
    for trace in delta.data:  # every point carries its interval
        assert trace.error_y.array is not None and all(np.isfinite(trace.error_y.array))
    sft_trace = next(t for t in delta.data if t.name == "gt-sft")
    arc = list(sft_trace.x).index("arc_easy")
    assert sft_trace.error_y.array[arc] == pytest.approx(half) and sft_trace.y[arc] == pytest.approx(-0.22)
    pareto = [t for t in drawn["safety_vs_task_pareto"].data if t.name != "Pareto front"]
    assert all(t.error_x.array is not None and t.error_y.array is not None for t in pareto)
    versus = drawn["safety_vs_capability"]
    assert "Pearson r=" in versus.layout.title.text and all(t.error_y.array is not None for t in versus.data
                                                            if t.mode != "lines")
    assert drawn["attack_success"].data[0].error_y.array is not None

    from forgetting.analysis import AnalyzeConfig, analyze_stage

    page = analyze_stage(AnalyzeConfig(study="forgetting", output=str(tmp_path / "forgetting.html"))).read_text()
    assert "Within or beyond noise" in page and "-0.020 [-0.08, 0.04]" in page and "Method against method" in page


def test_correlation_says_when_there_are_too_few_points():
    from forgetting.analysis import noise

    assert "too few points" in noise.correlation([0.1, 0.2], [0.3, 0.1])["note"]
    full = noise.correlation([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], [0.0, -0.1, -0.25, -0.3, -0.38, -0.52])
    assert full["pearson_r"] < -0.95 and full["pearson_ci_low"] < full["pearson_r"] < full["pearson_ci_high"]
    assert full["pearson_p"] < 0.01 and full["spearman_r"] == pytest.approx(-1.0)
    assert "does not vary" in noise.correlation([1, 1, 1], [0, 1, 2])["note"]


def test_probe_suite_logs_each_accuracy_with_its_interval(store, tiny_checkpoint_with_tokenizer):
    import mlflow

    from forgetting.stages import evaluate_stage

    run = evaluate_stage(EvaluateConfig(model=str(tiny_checkpoint_with_tokenizer), suite="probes", batch_size=8))
    metrics, n = run.data.metrics, run.data.metrics["n_probe_statements"]
    assert n > 0 and metrics["best_layer_accuracy_ci_low"] <= metrics["best_layer_accuracy"] <= metrics[
        "best_layer_accuracy_ci_high"]
    assert round(metrics["best_layer_accuracy"] * n) == pytest.approx(metrics["best_layer_accuracy"] * n)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "probe_accuracy_ci_low")
    assert sorted(point.step for point in history) == list(range(len(history))) and len(history) >= 2
