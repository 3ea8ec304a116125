"""Training-data attribution: which training data caused a behaviour (Isonuma & Titov, ACL 2024).

Each method is a function ``(model, train, sources, test, **options) -> Attribution`` registered in
``ATTRIBUTION_METHODS`` as an ``AttributionMethod`` (``forgetting.attribution.spec``: the config fields
it reads, the function giving its options, whether it reads the mixture's checkpoints); none of them
changes the model it is given.
"""
from forgetting.attribution.spec import AttributionMethod
from forgetting.registry import Registry

_UNLEARNING_FIELDS = ("unlearning_rate", "unlearning_steps", "gradient_checkpointing")

ATTRIBUTION_METHODS = Registry("method")
ATTRIBUTION_METHODS.register("untrac", AttributionMethod(
    "forgetting.attribution.methods:untrac", _UNLEARNING_FIELDS, "forgetting.attribution.methods:unlearning_options"))
ATTRIBUTION_METHODS.register("untrac-inv", AttributionMethod(
    "forgetting.attribution.methods:untrac_inv", _UNLEARNING_FIELDS,
    "forgetting.attribution.methods:unlearning_options"))
ATTRIBUTION_METHODS.register("tracin", AttributionMethod(
    "forgetting.attribution.methods:tracin", ("unlearning_rate", "tracin_parameters"),
    "forgetting.attribution.methods:tracin_options", needs_checkpoints=True))

MIXTURES = Registry("train_data")
MIXTURES.register("planted", "forgetting.attribution.planted:planted_mixture")
MIXTURES.register("toxicity", "forgetting.attribution.toxicity:toxicity_mixture")
