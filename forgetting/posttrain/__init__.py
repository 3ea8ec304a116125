"""Post-training methods of the forgetting study, one registry entry each.

A method is a ``PosttrainMethod`` (``forgetting.posttrain.spec``) naming its trainer,
``(model, tokenizer, data, config, work_dir) -> metrics``: it trains ``model`` in place on ``data``
(``forgetting.posttrain.data.MethodData``) and returns at least ``objective_start`` and ``objective_end``
of its own training objective (``objective`` in the metrics names it), so a test can check that the
method moved what it optimises. The registration order is the forgetting grid's order.
"""
from forgetting.posttrain.spec import PosttrainMethod
from forgetting.registry import Registry

POSTTRAIN_METHODS = Registry("method")
POSTTRAIN_METHODS.register("gt-sft", PosttrainMethod("forgetting.posttrain.trl_methods:supervised",
                                                     verl_trainer="sft"))
POSTTRAIN_METHODS.register("sf-sft", PosttrainMethod("forgetting.posttrain.trl_methods:supervised", collected="sft",
                                                     teacher="same-family", verl_trainer="sft"))
POSTTRAIN_METHODS.register("cf-sft", PosttrainMethod("forgetting.posttrain.trl_methods:supervised", collected="sft",
                                                     teacher="cross-family", verl_trainer="sft"))
POSTTRAIN_METHODS.register("self", PosttrainMethod("forgetting.posttrain.trl_methods:self_play"))
POSTTRAIN_METHODS.register("on-rl", PosttrainMethod("forgetting.posttrain.trl_methods:online_rl", grouped=True,
                                                    verl_trainer="grpo"))
POSTTRAIN_METHODS.register("off-rl", PosttrainMethod("forgetting.posttrain.trl_methods:offline_rl",
                                                     collected="preferences", teacher="start"))
POSTTRAIN_METHODS.register("pi", PosttrainMethod("forgetting.posttrain.pi_distill:pi_distill", grouped=True))
POSTTRAIN_METHODS.register("sdft", PosttrainMethod("forgetting.posttrain.sdft:self_distillation", grouped=True))
