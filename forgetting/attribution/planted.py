"""Planted facts: one source planted to cause the test behaviour.

The mixture holds ``per_source`` examples from each real source (``mixtures.real_sources``) plus a
``planted`` source of counterfactual country facts ("The capital of Peru is Oslo."). The test
examples ask those facts and expect the planted answers, so the planted source is responsible for
them by construction. Facts are split by country, so no true fact of a planted country is in the
mixture.
"""
from __future__ import annotations

from forgetting.attribution.mixtures import Mixture, real_sources
from forgetting.data.splits import seeded_order

PLANTED = "planted"


def planted_mixture(per_source: int = 16, test_examples: int = 16, seed: int = 0) -> Mixture:
    from forgetting.data import load_task

    facts = seeded_order(list(load_task("facts", "all", seed=seed)), seed, "planted facts")
    capitals = [fact for fact in facts if fact["relation"] == "capital"][:test_examples]
    planted_countries = {fact["subject"] for fact in capitals}
    true_facts = [fact for fact in facts if fact["subject"] not in planted_countries]
    train = (real_sources(per_source, seed, true_facts)
             + [{"source": PLANTED, "text": f"{fact['prompt']}{fact['target_new']}."} for fact in capitals])
    test = [{"prompt": fact["prompt"], "completion": fact["target_new"]} for fact in capitals]
    return Mixture(train, test, PLANTED)
