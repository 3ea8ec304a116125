"""One schema per task kind: the columns every task of that kind has, in this order.

Tasks may add optional columns after these (MMLU's ``subject``, SST-2's ``text``, ...); code that
works across tasks should rely only on the columns below. Every ``id`` is unique within a task and
stable across releases of its source, because splits are drawn from a hash of it.

multiple_choice
    id (str), prompt (str: the context, ending right before the answer, e.g.
    ``"Question: ...\\nAnswer:"``), choices (list[str]: continuations of ``prompt``, each with its
    leading space, so ``prompt + choices[i]`` is the full text), label (int: index of the right
    choice). Score by the summed log-likelihood of each choice given the prompt. The prompts follow
    lm-evaluation-harness (``target_delimiter: ""`` since the space is in the choice).

generative
    id, prompt (``"Question: ...\\nAnswer:"`` or, for MATH, ``"Problem:\\n...\\n\\nSolution:"``),
    answer (str: the canonical final answer: GSM8K's number after ``####`` without thousands
    separators, MATH's last ``\\boxed{}`` content, the first NQ/TriviaQA answer), answers
    (list[str]: every acceptable answer, ``answer`` first), solution (str: the reference solution
    or rationale where the source has one, else ``""``).

code
    id, prompt, entry_point (str: the function the tests call), tests (str), canonical_solution
    (str). The contract: ``prompt + completion + "\\n\\n" + tests`` is a Python program that exits
    without an exception exactly when the completion passes; ``completion = canonical_solution``
    passes. HumanEval's prompt is a function header with docstring (the completion is its body) and
    its tests are the ``check`` function followed by ``check(entry_point)``; MBPP's prompt is a
    module docstring with the task and one example assert (the completion is the whole program) and
    its tests are the setup code followed by the assert lines.

fact
    id (``"<country iso>/<relation>"``), subject (str: the country), relation (str), prompt (str,
    e.g. ``"The capital of France is"``), target_true (str: ``" Paris"``, leading space),
    target_new (str: a counterfactual: a seeded draw from other subjects' values of the same
    relation, never equal to target_true), paraphrases (list[str]: 3 rewordings of the prompt,
    each completed by the same targets).

corpus
    id (str: the file's path relative to its root, POSIX separators), text (str).

safety
    id, prompt (str: the request or behaviour), category (str: the source's harm category; ``""``
    where it has none), source (str: the dataset and file it came from). ``refusal_labelled`` and
    ``refusal_demonstrations`` add response (str) and label (int: 1 when the response refuses,
    human-labelled).
"""
from __future__ import annotations

KINDS = ("multiple_choice", "generative", "code", "fact", "corpus", "safety")

COLUMNS: dict[str, dict[str, str]] = {
    "multiple_choice": {"id": "string", "prompt": "string", "choices": "list<string>", "label": "int64"},
    "generative": {"id": "string", "prompt": "string", "answer": "string", "answers": "list<string>",
                   "solution": "string"},
    "code": {"id": "string", "prompt": "string", "entry_point": "string", "tests": "string",
             "canonical_solution": "string"},
    "fact": {"id": "string", "subject": "string", "relation": "string", "prompt": "string",
             "target_true": "string", "target_new": "string", "paraphrases": "list<string>"},
    "corpus": {"id": "string", "text": "string"},
    "safety": {"id": "string", "prompt": "string", "category": "string", "source": "string"},
}

TARGET_COLUMN = {"multiple_choice": "label", "generative": "answer", "code": "canonical_solution",
                 "fact": "target_true", "corpus": None, "safety": None}
"""The column MLflow records as the dataset's targets."""


def arrow_schema(kind: str):
    """The kind's columns as a ``pyarrow.Schema`` (pyarrow is imported only here, on demand)."""
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "list<string>": pa.list_(pa.string())}
    return pa.schema([(name, types[type_name]) for name, type_name in COLUMNS[kind].items()])
