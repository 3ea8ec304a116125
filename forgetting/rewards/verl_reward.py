"""The domain rewards in the signature verl's ``custom_reward_function`` calls.

verl passes the row's ``data_source`` (our domain), the decoded response and
``reward_model.ground_truth`` (here the JSON of the reward columns: answer, answers, label, prompt,
tests). Code still runs only in the sandbox.
"""
from __future__ import annotations

import json


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info=None) -> float:
    from forgetting.scoring.generation import cut_at_stop
    from forgetting.rewards import REWARDS
    from forgetting.rewards.domains import get_domain

    domain = get_domain(data_source)
    [reward] = REWARDS.get(domain.reward)([cut_at_stop(solution_str, domain.stop_strings)], [json.loads(ground_truth)])
    return reward
