"""Adversarial safety attacks on a checkpoint: GCG suffixes and AutoDAN prompts.

Every attack optimises towards a target string per behaviour (``prompts.target_for``) and is
judged by the shared refusal classifier (``forgetting.scoring.refusal``) on the model's greedy
reply. The ``evaluate`` stage's ``attacks`` suite (``forgetting.evaluation.attack_suite``) calls
the registered functions of ``forgetting.attacks.suite``.
"""
from forgetting.registry import Registry

ATTACKS = Registry("attack")
ATTACKS.register("gcg", "forgetting.attacks.suite:attack_gcg")
ATTACKS.register("gcg-universal", "forgetting.attacks.suite:attack_gcg_universal")
ATTACKS.register("autodan", "forgetting.attacks.suite:attack_autodan")
