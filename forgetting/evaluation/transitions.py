"""Sample-level forgetting: how each example's correctness changed from a reference model.

Benchmark accuracy can stay flat while a model forgets some examples and learns others; the
transition counts show both directions. For every benchmark ``delta = (learned − forgotten) / n``.
"""
from __future__ import annotations

import pandas as pd

TRANSITIONS = {(True, False): "correct_to_incorrect", (False, True): "incorrect_to_correct",
               (True, True): "correct_to_correct", (False, False): "incorrect_to_incorrect"}


def transition_table(model: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Per example (``benchmark``, ``id``): ``reference_correct``, ``correct`` and the ``transition``.
    Both frames have columns benchmark, id, correct; examples missing from either side are dropped."""
    joined = reference.rename(columns={"correct": "reference_correct"})[["benchmark", "id", "reference_correct"]] \
        .merge(model[["benchmark", "id", "correct"]], on=["benchmark", "id"], how="inner", validate="one_to_one")
    joined["transition"] = [TRANSITIONS[(bool(r), bool(c))]
                            for r, c in zip(joined["reference_correct"], joined["correct"])]
    return joined


def transition_metrics(table: pd.DataFrame) -> dict[str, float]:
    """Per benchmark: accuracy, reference accuracy, delta (with its interval and McNemar's exact
    test on forgotten vs learned), the four counts and the two rates, each rate with its interval."""
    from forgetting.scoring.intervals import paired_change, rate

    metrics = {}
    for benchmark, rows in table.groupby("benchmark"):
        n = len(rows)
        counts = rows["transition"].value_counts()
        forgotten, learned = int(counts.get("correct_to_incorrect", 0)), int(counts.get("incorrect_to_correct", 0))
        metrics |= {**rate(f"{benchmark}_accuracy", int(rows["correct"].sum()), n),
                    **rate(f"{benchmark}_reference_accuracy", int(rows["reference_correct"].sum()), n),
                    **paired_change(f"{benchmark}_delta", forgotten, learned, n),
                    f"{benchmark}_n": n,
                    **{f"{benchmark}_n_{name}": int(counts.get(name, 0)) for name in TRANSITIONS.values()},
                    **rate(f"{benchmark}_forgetting_rate", forgotten, n),
                    **rate(f"{benchmark}_learning_rate", learned, n)}
    return metrics
