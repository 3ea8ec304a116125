"""Code accuracy (pass@1, greedy): the model completes the prompt, the sandbox runs the tests.

Model-written programs never run in this process: ``forgetting.rewards.sandbox.run_batch``
executes them in isolated children, a bounded pool across cores.
"""
from __future__ import annotations

# A completion ends where a new top-level statement begins.
CODE_STOP_STRINGS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert ", "\n```",
                     "<|im_end|>", "<|endoftext|>")


def score_code(model, tokenizer, rows, max_new_tokens: int = 384, batch_size: int = 8,
               precision: str = "fp32", timeout: float = 10.0, engine=None):
    """Per-row verdicts and tokens generated; ``engine`` as in ``generative.score_generative``."""
    from forgetting.scoring.generation import greedy_engine
    from forgetting.rewards.sandbox import Job, run_batch

    engine = engine or greedy_engine(model, tokenizer, batch_size, precision)
    prompts = [row["prompt"] for row in rows]
    completions, tokens = engine(prompts, max_new_tokens, CODE_STOP_STRINGS)
    verdicts = run_batch([Job(program=prompt + completion, tests=row["tests"], timeout=timeout)
                          for prompt, completion, row in zip(prompts, completions, rows)])
    results = [{"id": row["id"], "correct": verdict.passed, "status": verdict.status, "completion": completion}
               for row, completion, verdict in zip(rows, completions, verdicts)]
    return results, tokens
