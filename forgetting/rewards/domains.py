"""The forgetting study's domains: where training prompts come from, what is held out for evaluation,
which reward verifies a response, and what the ground-truth response is.

Prompts are plain text in the task's own format (``"Question: ...\\nAnswer:"``, MBPP's docstring),
so a base and an instruct model read the same thing and TRL sees standard prompt-completion data.
"""
from __future__ import annotations

from dataclasses import dataclass

from forgetting.evaluation.code import CODE_STOP_STRINGS
from forgetting.evaluation.generation import STOP_STRINGS


@dataclass(frozen=True)
class Domain:
    name: str
    train_task: str                  # prompts for collect and posttrain come from its "train" split
    eval_tasks: tuple[str, ...]      # held out: their "eval" split never overlaps the training prompts
    reward: str                      # a ``forgetting.rewards.REWARDS`` name
    stop_strings: tuple[str, ...] = STOP_STRINGS

    def reference(self, row) -> str:
        """The ground-truth completion of a training row (what gt-sft learns)."""
        if self.reward == "code":
            return row["canonical_solution"]
        if self.reward == "math":
            return " " + row["solution"].strip()
        return " " + row["answer"]


DOMAINS = {
    "math": Domain("math", "gsm8k", ("gsm8k", "math500"), "math"),
    "code": Domain("code", "mbpp", ("humaneval",), "code", CODE_STOP_STRINGS),
    "qa": Domain("qa", "naturalqs", ("naturalqs",), "qa"),
}


def get_domain(name: str) -> Domain:
    from forgetting.errors import check_choice

    check_choice("domain", name, tuple(DOMAINS))
    return DOMAINS[name]
