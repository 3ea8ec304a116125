"""Verifiable rewards: math answer match, code tests in a sandbox, QA exact match, refusal where due.

Each is a ``Reward`` (``forgetting.rewards.spec``) registered in ``REWARDS`` by domain: its scoring
function ``(completions, rows) -> list[float]`` over a batch (rows in their task's schema, see
``forgetting.data.schemas``; 1.0 is correct, 0.0 is not), the ground-truth response of a row, and the
row columns it reads.
"""
from forgetting.registry import Registry
from forgetting.rewards.spec import Reward

_VERIFIABLE = "forgetting.rewards.verifiable"

REWARDS = Registry("reward")
REWARDS.register("math", Reward(f"{_VERIFIABLE}:math_reward", f"{_VERIFIABLE}:math_reference", ("answer", "answers")))
REWARDS.register("qa", Reward(f"{_VERIFIABLE}:qa_reward", f"{_VERIFIABLE}:qa_reference", ("answers",)))
REWARDS.register("code", Reward(f"{_VERIFIABLE}:code_reward", f"{_VERIFIABLE}:code_reference", ("tests",)))
REWARDS.register("refusal", Reward(f"{_VERIFIABLE}:refusal_reward", f"{_VERIFIABLE}:refusal_reference", ("label",)))
