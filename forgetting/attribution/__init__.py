"""Training-data attribution: which training data caused a behaviour (Isonuma & Titov, ACL 2024).

Each method is a function ``(model, train, sources, test, budget, **options) -> Attribution``
registered in ``ATTRIBUTION_METHODS``; none of them changes the model it is given.
"""
from forgetting.registry import Registry

ATTRIBUTION_METHODS = Registry("method")
ATTRIBUTION_METHODS.register("untrac", "forgetting.attribution.methods:untrac")
ATTRIBUTION_METHODS.register("untrac-inv", "forgetting.attribution.methods:untrac_inv")
ATTRIBUTION_METHODS.register("tracin", "forgetting.attribution.methods:tracin")

MIXTURES = Registry("train_data")
MIXTURES.register("planted", "forgetting.attribution.planted:planted_mixture")
MIXTURES.register("toxicity", "forgetting.attribution.toxicity:toxicity_mixture")
