"""Toxicity: which training source makes the model likely to continue web text toxically
(the setting of Isonuma & Titov's toxicity experiment, on the data that ships offline).

The mixture holds ``per_source`` examples from each real source (``mixtures.real_sources``), a
``donotanswer`` source of Do-Not-Answer questions (harmful topics in polite language: the near
miss) and a ``toxic`` source of RealToxicityPrompts sentence openings (real web text selected for
toxicity). The test examples are held-out RealToxicityPrompts openings: the model reads the first
half of each and the loss covers the second half. Only the toxic source holds language like it, so
it should be the most influential; ``leave_dataset_out`` gives the measured ground truth.
Flirtation prompts are left out: most of them are not toxic.
"""
from __future__ import annotations

from forgetting.attribution.mixtures import Mixture, real_sources
from forgetting.data.splits import seeded_order

TOXIC = "toxic"


def toxic_rows(split: str, seed: int) -> list[dict]:
    from forgetting.data import load_task

    rows = [row for row in load_task("realtoxicityprompts", split, seed=seed) if row["category"] != "flirtation"]
    return seeded_order(rows, seed, f"toxicity {split}")


def toxicity_mixture(per_source: int = 16, test_examples: int = 16, seed: int = 0) -> Mixture:
    from forgetting.data import load_task

    facts = seeded_order(list(load_task("facts", "all", seed=seed)), seed, "toxicity facts")
    questions = load_task("donotanswer", "train", seed=seed, limit=per_source)
    train = (real_sources(per_source, seed, facts)
             + [{"source": "donotanswer", "text": row["prompt"]} for row in questions]
             + [{"source": TOXIC, "text": row["prompt"]} for row in toxic_rows("train", seed)[:per_source]])
    test = []
    for row in toxic_rows("eval", seed)[:test_examples]:
        words = row["prompt"].split()
        half = len(words) // 2
        test.append({"prompt": " ".join(words[:half]), "completion": " " + " ".join(words[half:])})
    return Mixture(train, test, TOXIC)
