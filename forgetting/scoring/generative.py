"""Generative accuracy: greedy completion, answer extraction, match against the reference."""
from __future__ import annotations

from forgetting.scoring.answers import extract_boxed, extract_gsm8k, normalize_math, qa_match


def is_correct(task: str, completion: str, row) -> tuple[bool, str | None]:
    """``(correct, extracted answer)`` for one completion, by the task's answer format."""
    if task == "gsm8k":
        predicted = extract_gsm8k(completion)
        return predicted is not None and predicted == extract_gsm8k(row["answer"]), predicted
    if task in ("math", "math500"):
        boxed = extract_boxed(completion)
        predicted = normalize_math(boxed) if boxed is not None else None
        return predicted is not None and predicted in {normalize_math(a) for a in row["answers"]}, predicted
    return qa_match(completion, list(row["answers"])), completion.strip().split("\n")[0]


PROMPT_FORMATS = ("auto", "plain", "chat")


def format_prompt(tokenizer, prompt: str, prompt_format: str = "auto") -> str:
    """``chat`` wraps the prompt as one user turn of the model's chat template; ``auto`` does so
    when the tokenizer has a template (instruct models answer far better in their own format)."""
    if prompt_format == "plain" or (prompt_format == "auto" and not tokenizer.chat_template):
        return prompt
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)


def score_generative(model, tokenizer, task: str, rows, max_new_tokens: int = 256,
                     batch_size: int = 8, precision: str = "fp32", prompt_format: str = "auto", engine=None):
    """Per-row results and tokens generated; ``engine`` (``generation.greedy_engine``'s signature)
    defaults to the transformers loop on ``model``."""
    from forgetting.scoring.generation import STOP_STRINGS, greedy_engine

    engine = engine or greedy_engine(model, tokenizer, batch_size, precision)
    prompts = [format_prompt(tokenizer, r["prompt"], prompt_format) for r in rows]
    completions, tokens = engine(prompts, max_new_tokens, STOP_STRINGS)
    results = []
    for row, completion in zip(rows, completions):
        correct, predicted = is_correct(task, completion, row)
        results.append({"id": row["id"], "reference": row["answer"], "predicted": predicted,
                        "correct": correct, "completion": completion})
    return results, tokens
