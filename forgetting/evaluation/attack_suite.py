"""The ``attacks`` evaluation suite: attack success rate of a registered attack (GCG, AutoDAN) on one
checkpoint, read from its ``Attack`` spec (``forgetting.attacks.spec``).

Logged in the active run: ``asr`` (replies the reported refusal judge, ``judge``, does not flag, with
the attack), ``asr_plain`` (the same for the plain requests), ``<judge>_asr``/``<judge>_asr_plain`` by
every judge, ``loss_before``/``loss_after`` (mean target loss
at the starting point and with the attack) and ``n_behaviours``; the per-behaviour table
``attacks/<attack>.json`` carries the control found, so ``transfer_from`` can score the one control a
universal attack found on one checkpoint on another.
"""
from __future__ import annotations

import mlflow

from forgetting.errors import UsageError, check_range
from forgetting.scoring.intervals import interval_text, mean, rate
from forgetting.scoring.judges import JUDGE_NAMES, check_report_judge


def check_attacks(config) -> None:
    """The attack suite's checks of an ``EvaluateConfig``."""
    from forgetting.attacks import ATTACKS
    from forgetting.data.safety import check_behaviours

    attack = ATTACKS.get(config.attack)
    check_behaviours(config.behaviours, config.split, config.source)
    check_report_judge(config.judge)
    for name in attack.fields:
        check_range(name, getattr(config, name), 1)
    if config.transfer_from and not attack.universal:
        universal = " or ".join(repr(name) for name in ATTACKS.names_where(lambda spec: spec.universal))
        raise UsageError(f"transfer_from needs attack={universal}, got attack={config.attack!r}")


def attacks_summary(config, metrics: dict) -> str:
    return (f"{config.attack} on {int(metrics['n_behaviours'])} {config.behaviours} behaviours: ASR "
            f"{metrics['asr']:.2f} {interval_text(metrics, 'asr')} (plain requests {metrics['asr_plain']:.2f} "
            f"{interval_text(metrics, 'asr_plain')}), target loss {metrics['loss_before']:.3f} -> "
            f"{metrics['loss_after']:.3f}")


def transferred_control(run_id: str, attack: str) -> str:
    """The one control an earlier attacks run of the universal ``attack`` found."""
    from forgetting.tracking.runs import logged_table

    try:
        return str(logged_table(run_id, f"attacks/{attack}.json")["control"].iloc[0])
    except Exception as error:  # noqa: BLE001 - any lookup failure is the same user error
        raise UsageError(f"transfer_from={run_id!r} is not a finished {attack} attacks run") from error


def evaluate_attacks(config) -> dict[str, float]:
    """Attack every behaviour inside the active run; the metrics and table described above."""
    from forgetting.attacks import ATTACKS
    from forgetting.attacks.prompts import behaviours_from
    from forgetting.data import load_task, log_dataset
    from forgetting.evaluation.accuracy import as_table
    from forgetting.models import load_model
    from forgetting.device import autocast

    attack = ATTACKS.get(config.attack)
    transfer = transferred_control(config.transfer_from, config.attack) if config.transfer_from else ""
    rows = load_task(config.behaviours, config.split, seed=config.seed, limit=config.limit or None,
                     source=config.source)
    log_dataset(rows, config.behaviours, config.split)
    model, tokenizer = load_model(config.model)
    model.eval().requires_grad_(False)
    with autocast(config.precision, model.device):
        results = attack.run(model, tokenizer, behaviours_from(rows), attack.search_config(config),
                             max_new_tokens=config.max_new_tokens, transfer=transfer)
    n = len(results)
    by_judge = {key: value for name in JUDGE_NAMES for key, value in
                {**rate(f"{name}_asr", sum(r[f"success_{name}"] for r in results), n),
                 **rate(f"{name}_asr_plain", sum(not r[f"refused_plain_{name}"] for r in results), n)}.items()}
    metrics = {**rate("asr", sum(r[f"success_{config.judge}"] for r in results), n),
               **rate("asr_plain", sum(not r[f"refused_plain_{config.judge}"] for r in results), n), **by_judge,
               **mean("loss_before", [r["loss_before"] for r in results]),
               **mean("loss_after", [r["loss_after"] for r in results]),
               **rate("lowered_fraction", sum(r["loss_after"] < r["loss_before"] for r in results), n),
               "n_behaviours": n}
    mlflow.log_metrics(metrics)
    mlflow.log_table(as_table(results), artifact_file=f"attacks/{config.attack}.json")
    return metrics
