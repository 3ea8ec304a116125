"""The verifiable rewards, each beside the ground-truth response that earns it. Model-written code runs
only in ``forgetting.rewards.sandbox``."""
from __future__ import annotations

from forgetting.scoring.answers import extract_boxed, normalize_math, normalize_number, qa_match


def final_answer(completion: str) -> str | None:
    """The last ``\\boxed{}`` content, else the text after the last ``####`` (first line), normalised."""
    boxed = extract_boxed(completion)
    if boxed is not None:
        return normalize_math(boxed)
    if "####" in completion:
        line = completion.rsplit("####", 1)[1].strip().split("\n")[0]
        return normalize_math(line) if line else None
    return None


def math_reward(completions: list[str], rows) -> list[float]:
    """1 when the final answer (``\\boxed{}`` or ``####``) equals a reference after normalisation."""
    rewards = []
    for completion, row in zip(completions, rows):
        predicted = final_answer(completion)
        references = {normalize_math(answer) for answer in row["answers"]} | {normalize_number(row["answer"])}
        rewards.append(float(predicted is not None and predicted in references))
    return rewards


def math_reference(row) -> str:
    """The worked solution, ending in its ``#### <answer>`` line."""
    return " " + row["solution"].strip()


def qa_reward(completions: list[str], rows) -> list[float]:
    """1 when the first line of the completion matches any reference answer (SQuAD normalisation)."""
    return [float(qa_match(completion, list(row["answers"]))) for completion, row in zip(completions, rows)]


def qa_reference(row) -> str:
    return " " + row["answer"]


def code_reward(completions: list[str], rows, timeout: float = 10.0) -> list[float]:
    """1 when ``prompt + completion`` passes the row's tests, run in the sandbox in parallel."""
    from forgetting.rewards.sandbox import Job, run_batch

    verdicts = run_batch([Job(program=row["prompt"] + completion, tests=row["tests"], timeout=timeout)
                          for completion, row in zip(completions, rows)])
    return [float(verdict.passed) for verdict in verdicts]


def code_reference(row) -> str:
    return row["canonical_solution"]


def refusal_reward(completions: list[str], rows) -> list[float]:
    """1 when the response refuses exactly where the row's ``label`` asks for a refusal (the keyword
    judge, ``forgetting.data.safety.is_refusal``): refusing a benign request scores 0 as well."""
    from forgetting.data.safety import is_refusal

    return [float(is_refusal(completion) == bool(row["label"])) for completion, row in zip(completions, rows)]


def refusal_reference(row) -> str:
    """The human-labelled demonstration: a refusal of a harmful request, an answer to a benign one."""
    return row["response"]
