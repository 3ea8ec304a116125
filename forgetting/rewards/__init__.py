"""Verifiable rewards: math answer match, code tests in a sandbox, QA exact match, refusal where due.

A reward is ``(completions, rows) -> list[float]`` over a batch (rows in their task's schema, see
``forgetting.data.schemas``), registered in ``REWARDS`` by domain; 1.0 is correct, 0.0 is not.
"""
from forgetting.registry import Registry

REWARDS = Registry("reward")
REWARDS.register("math", "forgetting.rewards.verifiable:math_reward")
REWARDS.register("qa", "forgetting.rewards.verifiable:qa_reward")
REWARDS.register("code", "forgetting.rewards.verifiable:code_reward")
REWARDS.register("refusal", "forgetting.rewards.verifiable:refusal_reward")
