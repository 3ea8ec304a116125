"""Post-training methods of the forgetting study, one registry entry each.

A method is ``(model, tokenizer, data, config, work_dir) -> metrics``: it trains ``model`` in place
on ``data`` (``forgetting.posttrain.data.MethodData``) and returns at least ``objective_start`` and
``objective_end`` of its own training objective (``objective`` in the metrics names it), so a test
can check that the method moved what it optimises.
"""
from forgetting.registry import Registry

POSTTRAIN_METHODS = Registry("method")
POSTTRAIN_METHODS.register("gt-sft", "forgetting.posttrain.trl_methods:supervised")
POSTTRAIN_METHODS.register("sf-sft", "forgetting.posttrain.trl_methods:supervised")
POSTTRAIN_METHODS.register("cf-sft", "forgetting.posttrain.trl_methods:supervised")
POSTTRAIN_METHODS.register("off-rl", "forgetting.posttrain.trl_methods:offline_rl")
POSTTRAIN_METHODS.register("self", "forgetting.posttrain.trl_methods:self_play")
POSTTRAIN_METHODS.register("on-rl", "forgetting.posttrain.trl_methods:online_rl")
POSTTRAIN_METHODS.register("pi", "forgetting.posttrain.pi_distill:pi_distill")
POSTTRAIN_METHODS.register("sdft", "forgetting.posttrain.sdft:self_distillation")

# Which collect artifact a method trains on ('' = none: it builds its data from the domain itself).
COLLECTED_DATA = {"gt-sft": "", "sf-sft": "sft", "cf-sft": "sft", "off-rl": "preferences", "self": "",
                  "on-rl": "", "pi": "", "sdft": ""}
