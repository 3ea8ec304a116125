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
    frames, figures, counts, notes = collect("forgetting")
    results, summary = frames["forgetting_results"], frames["model_summary"].set_index("model")
    assert counts == {"n_evaluated_models": 2} and not notes and len(results) == 4
    assert set(results["benchmark"]) == {"gsm8k", "arc_easy"}
    sft = summary.loc["models:/m-gt-sft-math@posttrained"]
    assert sft["task_accuracy"] == 0.4 and sft["mean_forgetting_rate"] == 0.3 and sft["refusal_rate"] == 0.2
    assert summary.loc["models:/m-on-rl-math@posttrained", "cka_mean"] == 0.9
    assert all(figures[name] is not None for name in ("forgetting_heatmap", "safety_vs_task_pareto"))
    front = pareto_front(summary.reset_index(), "task_accuracy", "refusal_rate")
    assert list(front["method"]) == ["on-rl", "gt-sft"]  # neither beats the other on both axes
    points = pd.DataFrame({"x": [1, 2, 3], "y": [3, 1, 2]})
    assert pareto_front(points, "x", "y").to_dict("list") == {"x": [1, 3], "y": [3, 2]}
