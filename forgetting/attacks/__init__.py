"""Adversarial safety attacks on a checkpoint: GCG suffixes and AutoDAN prompts.

Every attack optimises towards a target string per behaviour (``prompts.target_for``) and is
judged by the shared refusal judges (``forgetting.scoring.judges``) on the model's greedy
reply. Each is an ``Attack`` (``forgetting.attacks.spec``) registered in ``ATTACKS``; the ``evaluate``
stage's ``attacks`` suite (``forgetting.evaluation.attack_suite``) runs the registered functions of
``forgetting.attacks.suite`` with the search configs built by ``gcg.search_config`` and
``autodan.search_config``.
"""
from forgetting.attacks.spec import Attack
from forgetting.registry import Registry

_GCG_BUDGETS = ("steps", "suffix_length", "top_k", "attack_batch")

ATTACKS = Registry("attack")
ATTACKS.register("gcg", Attack("forgetting.attacks.suite:attack_gcg", "forgetting.attacks.gcg:search_config",
                               _GCG_BUDGETS))
ATTACKS.register("gcg-universal", Attack("forgetting.attacks.suite:attack_gcg_universal",
                                         "forgetting.attacks.gcg:search_config", _GCG_BUDGETS, universal=True))
ATTACKS.register("autodan", Attack("forgetting.attacks.suite:attack_autodan", "forgetting.attacks.autodan:search_config",
                                   ("generations", "population")))
