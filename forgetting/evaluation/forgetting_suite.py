"""``evaluate -P suite=forgetting``: capability benchmarks through lm-evaluation-harness, per example,
and the transitions from a reference model (usually the start of post-training).

Each benchmark's rows (the project's real, seeded ``split``) are written as an offline lm-eval task
(``dataset_path: json``): multiple-choice tasks score by log-likelihood (lm-eval's ``acc``);
generative ones (GSM8K, NQ, TriviaQA, MATH) generate greedily through lm-eval and each response is
scored by the project's answer matcher (the same rule as the domain rewards). lm-eval runs its HF
backend on the device policy's device, or its vLLM backend with ``engine=vllm``. ``log_samples`` gives
the per-example correctness. Code tasks (HumanEval, MBPP) are scored as the accuracy suite scores them:
pass@1 of one greedy completion per problem (``engine``: transformers or vLLM), each program run against
the task's tests in the sandbox (``forgetting.rewards.code``), so model-written programs run only
there. With ``reference`` set, the reference's per-example results come from its own FINISHED forgetting-suite run with the same benchmarks, split, limit and seed when one
exists (so a start model is scored once for all its post-trained descendants), else are scored in
this run; the transition table and counts are logged (``forgetting.evaluation.transitions``).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from forgetting.errors import check_choice

GENERATIVE_STOP = ["\n\nQuestion:", "\nQuestion:", "<|im_end|>", "<|endoftext|>"]
SCORED_KINDS = ("multiple_choice", "generative", "code")
EXAMPLES_ARTIFACT = "forgetting/examples.json"


def benchmark_names(config) -> list[str]:
    return [name.strip() for name in config.benchmarks.split(",") if name.strip()]


def check_forgetting(config) -> None:
    from forgetting.data import check_task, task_kind, task_names

    scorable = [t for t in task_names() if task_kind(t) in SCORED_KINDS]
    names = benchmark_names(config)
    if not names:
        check_choice("benchmarks", config.benchmarks, scorable)
    for name in names:
        check_choice("benchmarks", name, scorable)
        check_task(name, config.split, source=config.source)
    if config.reference:
        from forgetting.models import resolve_model

        resolve_model(config.reference)


def forgetting_summary(config, metrics: dict) -> str:
    """Each benchmark's accuracy and interval; against a reference, its delta, whether that is beyond
    noise, the transitions and McNemar's p."""
    from forgetting.scoring.intervals import interval_text, within_noise

    parts = []
    for name in benchmark_names(config):
        part = f"{name} {metrics[f'{name}_accuracy']:.3f} {interval_text(metrics, f'{name}_accuracy')}"
        if f"{name}_delta" in metrics:
            noise = "within noise" if within_noise(metrics, f"{name}_delta") else "beyond noise"
            part += (f" ({metrics[f'{name}_delta']:+.3f} {interval_text(metrics, f'{name}_delta')}, {noise}: "
                     f"{int(metrics[f'{name}_n_correct_to_incorrect'])} forgotten, "
                     f"{int(metrics[f'{name}_n_incorrect_to_correct'])} learned, McNemar "
                     f"p={metrics[f'{name}_delta_mcnemar_p']:.3g})")
        parts.append(part)
    return "forgetting: " + ", ".join(parts)


def write_generative_task(name: str, rows, directory: Path, max_new_tokens: int) -> str:
    task_name = f"forgetting_{name}"
    data_file = directory / f"{task_name}.jsonl"
    data_file.write_text("".join(json.dumps({"id": r["id"], "prompt": r["prompt"], "answer": r["answer"]}) + "\n"
                                 for r in rows), encoding="utf-8")
    task = {"task": task_name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data_file)}},
            "output_type": "generate_until", "test_split": "test", "doc_to_text": "{{prompt}}",
            "doc_to_target": "{{answer}}",
            "generation_kwargs": {"until": GENERATIVE_STOP, "max_gen_toks": max_new_tokens, "do_sample": False},
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}]}
    import yaml

    (directory / f"{task_name}.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    return task_name


def score_benchmarks(model_dir: str, config) -> pd.DataFrame:
    """Per-example correctness of one model: columns benchmark, id, correct, response."""
    from forgetting.data import load_task, task_kind
    from forgetting.scoring.generative import is_correct
    from forgetting.evaluation.lm_eval_bridge import run_lm_eval, write_multiple_choice_task

    rows_by_task, tasks, records = {}, {}, []
    with tempfile.TemporaryDirectory() as directory:
        for name in benchmark_names(config):
            rows = list(load_task(name, config.split, seed=config.seed, limit=config.limit or None,
                                  source=config.source))
            rows_by_task[name] = {row["id"]: row for row in rows}
            if task_kind(name) == "code":
                records += score_code_benchmark(model_dir, name, rows, config)
                continue
            tasks[name] = (write_multiple_choice_task(name, rows, directory) if task_kind(name) == "multiple_choice"
                           else write_generative_task(name, rows, Path(directory), config.max_new_tokens))
        output = run_lm_eval(model_dir, directory, list(tasks.values()), config.batch_size, log_samples=True,
                             engine=config.engine, precision=config.precision) if tasks else {"samples": {}}
    for name, task_name in tasks.items():
        for sample in output["samples"][task_name]:
            doc_id = str(sample["doc"]["id"])
            if "acc" in sample:
                records.append({"benchmark": name, "id": doc_id, "correct": bool(sample["acc"]), "response": ""})
            else:
                response = sample["filtered_resps"][0]
                response = response[0] if isinstance(response, list) else response
                correct, _ = is_correct(name, response, rows_by_task[name][doc_id])
                records.append({"benchmark": name, "id": doc_id, "correct": bool(correct), "response": response})
    return pd.DataFrame(records, columns=["benchmark", "id", "correct", "response"])


def score_code_benchmark(model_dir: str, name: str, rows: list[dict], config) -> list[dict]:
    """Per-problem pass@1 records of a code task: one greedy completion each (``config.engine``), run against
    the problem's tests in the sandbox."""
    from dataclasses import replace

    from forgetting.evaluation.accuracy import greedy_engine_of, load_scorer
    from forgetting.rewards.code import score_code

    scorer = replace(config, model=model_dir)
    model, tokenizer = load_scorer(scorer, "code")
    results, _ = score_code(model, tokenizer, rows, config.max_new_tokens, config.batch_size, config.precision,
                            engine=greedy_engine_of(scorer, model, tokenizer))
    del model
    return [{"benchmark": name, "id": str(result["id"]), "correct": bool(result["correct"]),
             "response": result["completion"]} for result in results]


def reference_examples(config) -> pd.DataFrame | None:
    """The per-example table of the reference's own FINISHED forgetting-suite run with the same data and
    engine, if any."""
    from dataclasses import replace

    from forgetting.tracking.runs import logged_table

    wanted = replace(config, model=config.reference, reference="")
    query = ("tags.`forgetting.entry_point` = 'evaluate' and attributes.status = 'FINISHED' "
             f"and params.suite = 'forgetting' and params.model = '{wanted.model}'")
    for run in mlflow.search_runs(search_all_experiments=True, filter_string=query, output_format="list",
                                  order_by=["attributes.start_time DESC"]):
        params = run.data.params
        # `mlflow run` logs an empty -P default shell-quoted, as ''; runs from before `engine` used hf.
        if params.get("reference") in ("", "''") and params.get("engine", "hf") == wanted.engine and all(
                params.get(k) == str(getattr(wanted, k)) for k in ("benchmarks", "split", "limit", "seed", "source")):
            table = logged_table(run.info.run_id, EXAMPLES_ARTIFACT)
            return table.astype({"id": str, "correct": bool})[["benchmark", "id", "correct", "response"]]
    return None


def evaluate_forgetting(config) -> dict[str, float]:
    from forgetting.scoring.intervals import rate
    from forgetting.evaluation.transitions import transition_metrics, transition_table
    from forgetting.models import resolve_model

    examples = score_benchmarks(resolve_model(config.model), config)
    mlflow.log_table(examples, artifact_file=EXAMPLES_ARTIFACT)
    metrics = {key: value for name, rows in examples.groupby("benchmark")
               for key, value in rate(f"{name}_accuracy", int(rows["correct"].sum()), len(rows)).items()}
    if config.reference:
        reference = reference_examples(config)
        metrics["reference_reused"] = float(reference is not None)
        if reference is None:
            reference = score_benchmarks(resolve_model(config.reference), config)
        table = transition_table(examples, reference)
        mlflow.log_table(table, artifact_file="forgetting/transitions.json")
        metrics |= transition_metrics(table)
    metrics["mean_accuracy"] = sum(metrics[f"{name}_accuracy"] for name in benchmark_names(config)) / len(
        benchmark_names(config))
    mlflow.log_metrics(metrics)
    return metrics
