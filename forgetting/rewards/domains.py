"""The forgetting study's domains: where training prompts come from, what is held out for evaluation,
which reward verifies a response, and what the ground-truth response is.

Prompts are plain text in the task's own format (``"Question: ...\\nAnswer:"``, MBPP's docstring),
so a base and an instruct model read the same thing and TRL sees standard prompt-completion data.
A domain whose reward checks a format says so in the prompt (``instruction``, on the line before
``Answer:``): math asks for the ``####`` line its reward reads.

``safety`` makes the safety-aligned start of the study: it trains on pyrit's human-labelled
demonstrations (refuse the harmful requests, answer the benign ones) and is held out on HarmBench,
which ``evaluate -P suite=safety`` measures. Its prompts are chat turns (``chat``), the format the
safety suite asks in, so the model learns to refuse where it will be tested.
"""
from __future__ import annotations

from dataclasses import dataclass

from forgetting.rewards import REWARDS
from forgetting.rewards.code import CODE_STOP_STRINGS
from forgetting.scoring.generation import STOP_STRINGS


@dataclass(frozen=True)
class Domain:
    name: str
    train_task: str                  # prompts for collect and posttrain come from its "train" split
    eval_tasks: tuple[str, ...]      # held out: their "eval" split never overlaps the training prompts
    reward: str                      # a ``forgetting.rewards.REWARDS`` name
    stop_strings: tuple[str, ...] = STOP_STRINGS
    instruction: str = ""
    chat: bool = False

    def rows(self, split: str = "train", seed: int = 0, limit: int | None = None, tokenizer=None) -> list[dict]:
        """Training rows (``split="train"``) or rows of the first held-out task, prompts instructed.
        A ``chat`` domain wraps each prompt in ``tokenizer``'s chat template (left plain without a
        tokenizer, for trainers such as verl's that apply the template themselves)."""
        from forgetting.data import load_task

        task = self.train_task if split == "train" else self.eval_tasks[0]
        rows = [dict(row) for row in load_task(task, split, seed=seed, limit=limit)]
        if self.instruction:
            for row in rows:
                row["prompt"] = f"{row['prompt'].removesuffix('Answer:')}{self.instruction}\nAnswer:"
        for row in rows:
            row["prompt"] = self.frame(row["prompt"], tokenizer)
        return rows

    def frame(self, prompt: str, tokenizer) -> str:
        """A chat domain's prompt as one user turn of ``tokenizer``'s chat template; others as they are."""
        from forgetting.scoring.generative import format_prompt

        return format_prompt(tokenizer, prompt) if self.chat and tokenizer is not None else prompt

    def reference(self, row) -> str:
        """The ground-truth completion of a training row (what gt-sft learns): its reward's reference."""
        return REWARDS.get(self.reward).reference(row)


DOMAINS = {
    "math": Domain("math", "gsm8k", ("gsm8k", "math500"), "math",
                   instruction="Solve it step by step, then write the final answer on its own line as #### <number>."),
    "code": Domain("code", "mbpp", ("humaneval",), "code", CODE_STOP_STRINGS),
    # Trained on TriviaQA, evaluated on held-out NaturalQuestions: no question is in both.
    "qa": Domain("qa", "triviaqa", ("naturalqs",), "qa"),
    "safety": Domain("safety", "refusal_demonstrations", ("harmbench",), "refusal", chat=True),
}


def get_domain(name: str) -> Domain:
    from forgetting.errors import check_choice

    check_choice("domain", name, tuple(DOMAINS))
    return DOMAINS[name]
