"""What a post-training method is given: the domain's training rows and, for methods that learn from
collected data, the rows of a collect run's artifact."""
from __future__ import annotations

from dataclasses import dataclass

from forgetting.rewards import REWARDS
from forgetting.rewards.domains import Domain


@dataclass(frozen=True)
class MethodData:
    domain: Domain
    rows: list[dict]               # the domain's training rows (a seeded subset of its train split)
    collected: list[dict] | None   # sft: {"prompt", "completion"}; preferences: {"prompt", "chosen", "rejected"}

    def ground_truth(self) -> list[dict]:
        return [{"prompt": row["prompt"], "completion": self.domain.reference(row)} for row in self.rows]

    def prompts(self) -> list[dict]:
        """Prompt rows with every column the domain's reward reads (TRL passes them to reward functions)."""
        columns = REWARDS.get(self.domain.reward).columns
        return [{key: row[key] for key in ("prompt", *columns) if key in row} for row in self.rows]
