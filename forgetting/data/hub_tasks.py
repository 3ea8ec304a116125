"""The hub data sets behind the task names (``load_task(..., source="hub")``), one spec each.

Every spec names the repo id, a revision, the file glob of each split in the repo's own layout,
and a mapper onto the project's schema of the task's kind (``schemas``). Where a full commit sha
of a data-bearing commit was verified it is pinned; otherwise ``main`` is read and the commit it
resolved to is logged with the MLflow dataset input.

What was verified, and where (hub dataset cards, file trees and commit pages, and code that loads
them, found through the project's documentation search; no hub access was available here, so
the loaders are tested offline against fixtures written in these layouts and schemas):

- ``counterfact`` (multiple_choice) and ``facts`` (fact): ``azhx/counterfact`` at
  ``c01c413f856e`` ("Dataset from ROME by Meng et al."): ``data/train-00000-of-00001-<hash>.parquet``
  (19,728) and ``data/test-00000-of-00001-bacb83500fca49a9.parquet`` (2,191); features case_id,
  pararel_idx, requested_rewrite {prompt (with ``{}`` for the subject), relation_id, subject,
  target_new {id, str}, target_true {id, str}}, paraphrase_prompts, neighborhood_prompts,
  attribute_prompts, generation_prompts (its README's ``dataset_info``). train = train, eval = test.
  ``facts`` keeps the data set's own counterfactual ``target_new`` (not a seeded draw);
  ``counterfact`` puts [target_true, target_new] in a seeded order. Both carry
  ``neighborhood_prompts`` (other subjects that share the true target).
- ``python_code`` (corpus, streamed): ``codeparrot/github-code`` at ``37e4c49089cb``:
  ``data/train-XXXXX-of-01126.parquet`` with columns content, repo_name, path, license, size (the
  repo's ``github-code.py`` reads these and derives ``language`` from the extension; that script
  cannot run under datasets >= 4, so the parquet files are read directly and filtered to ``.py``,
  the script's Python extension). Rows: id ``<repo_name>/<path>``, text, repository, license.
  Split by repository: a stable hash of repo_name puts 5% of repositories in "eval", so no
  repository is in both. The set is 1 TB: it is streamed, never downloaded; a load takes the first
  ``limit`` Python files of the split in stream order (``STREAMED_ROWS`` without a limit).
- ``imdb`` (multiple_choice, classification): ``stanfordnlp/imdb`` config plain_text:
  ``plain_text/{train,test,unsupervised}-00000-of-00001.parquet``, columns text, label (0 neg, 1 pos),
  25,000 / 25,000 / 50,000 (the unlabelled one is not used). Prompt as SST-2's:
  ``<text>\\nSentiment:`` with choices " negative", " positive"; ``<br />`` becomes a newline.
- ``gsm8k`` (generative): ``openai/gsm8k`` at ``e53f048856ff`` (the Parquet conversion), config main:
  ``main/{train,test}-00000-of-00001.parquet``, columns question, answer (ending ``#### <number>``),
  7,473 / 1,319. train = train (the real train split), eval = test.
- ``arc_easy``, ``arc_challenge`` (multiple_choice): ``allenai/ai2_arc`` at ``0555bd897c85``:
  ``ARC-Easy/`` and ``ARC-Challenge/{train,validation,test}-00000-of-00001.parquet``, columns id,
  question, choices {text, label}, answerKey; 2,251/570/2,376 and 1,119/299/1,172. lm-eval's prompt
  ``Question: <question>\\nAnswer:``. train = train, eval = test.
- ``naturalqs`` (generative): ``google-research-datasets/nq_open`` config nq_open:
  ``nq_open/{train,validation}-00000-of-00001.parquet``, columns question, answer (list),
  87,925 / 3,610. train = train, eval = validation.
- ``code_contests`` (code): ``deepmind/code_contests``: ``data/{train,valid,test}-*.parquet``
  (train in 39 shards), columns name, description, public_tests/private_tests/generated_tests
  {input: list, output: list}, source, difficulty, solutions/incorrect_solutions {language: list
  of int (3 = Python 3), solution: list}, cf_rating, ... (the dataset card, and the repo's
  ``contest_problem.proto``). Mapped by ``contests``; train = train, eval = test.
- ``xstest`` (safety, over-refusal): ``walledai/XSTest`` (gated: accept its terms on the hub):
  one parquet file under ``data/``, columns prompt, focus, type, note, label ("safe" / "unsafe"),
  450 prompts (250 safe, 200 unsafe contrasts). ``category`` is the type; ``unsafe`` is 1 for the
  contrasts (refusing them is right) and 0 for the safe prompts (refusing them is over-refusal).
  One split, ``test``; train/eval are a seeded 80/20 partition.
- ``harmbench`` (safety): ``walledai/HarmBench`` at ``a777536ffc60``: configs standard (200),
  contextual (100), copyright (100) under ``<config>/train-00000-of-00001.parquet``, columns prompt,
  category (the semantic category), and context (contextual). ``all`` is the standard behaviours
  (train/eval a seeded 80/20 partition, as offline); ``contextual`` puts the context before the
  behaviour as HarmBench's own code does (``<context>\\n\\n---\\n\\n<behaviour>``). Copyright
  behaviours are left out (they need HarmBench's hash-based judge).
"""
from __future__ import annotations

import re
from functools import lru_cache

from forgetting.data.contests import contest_row
from forgetting.data.generative import gsm8k_row, qa_row
from forgetting.data.hub import SOURCES, HubSource, HubTask, records, shipped_rows
from forgetting.errors import UsageError
from forgetting.data.splits import unit
from forgetting.data.task import Task

SOURCES.update({
    "counterfact": HubSource("azhx/counterfact", "c01c413f856ee38f5c080c9fc5e87aff478e2ff9",
                             {"train": "data/train-*.parquet", "test": "data/test-*.parquet"}, config="default"),
    "github_code": HubSource("codeparrot/github-code", "37e4c49089cb59716aec167bbf82efb2b40d24b2",
                             {"train": "data/train-*.parquet", "eval": "data/train-*.parquet"}, config="all-all",
                             streaming=True, columns=("content", "repo_name", "path", "license")),
    "imdb": HubSource("stanfordnlp/imdb", None,
                      {"train": "plain_text/train-*.parquet", "test": "plain_text/test-*.parquet"},
                      config="plain_text"),
    "gsm8k": HubSource("openai/gsm8k", "e53f048856ff4f594e959d75785d2c2d37b678ee",
                       {"train": "main/train-*.parquet", "test": "main/test-*.parquet"}, config="main"),
    "arc_easy": HubSource("allenai/ai2_arc", "0555bd897c85012514721df4e419709132bb00d4",
                          {split: f"ARC-Easy/{split}-*.parquet" for split in ("train", "validation", "test")},
                          config="ARC-Easy"),
    "arc_challenge": HubSource("allenai/ai2_arc", "0555bd897c85012514721df4e419709132bb00d4",
                               {split: f"ARC-Challenge/{split}-*.parquet" for split in ("train", "validation", "test")},
                               config="ARC-Challenge"),
    "nq_open": HubSource("google-research-datasets/nq_open", None,
                         {"train": "nq_open/train-*.parquet", "validation": "nq_open/validation-*.parquet"},
                         config="nq_open"),
    "code_contests": HubSource("deepmind/code_contests", None,
                               {split: f"data/{split}-*.parquet" for split in ("train", "valid", "test")},
                               config="default",
                               columns=("name", "description", "public_tests", "private_tests", "generated_tests",
                                        "source", "difficulty", "solutions", "cf_rating")),
    "xstest": HubSource("walledai/XSTest", None, {"test": "data/*.parquet"}, config="default"),
    "harmbench": HubSource("walledai/HarmBench", "a777536ffc60bc8317b06380da5b2acf8d6491fd",
                           {"all": "standard/*.parquet", "contextual": "contextual/*.parquet"}, config="standard"),
})

HELD_OUT_REPOSITORIES = 0.05
STREAMED_ROWS = {"train": 2000, "eval": 100}
"""Python files a streamed ``python_code`` split gives without a limit (about the offline corpus's size)."""


def _spaced(choices) -> list[str]:
    return [" " + choice for choice in choices]


# --- CounterFact --------------------------------------------------------------------------------


def counterfact_facts(records_, shipped: str):
    for record in records_:
        rewrite = record["requested_rewrite"]
        subject = rewrite["subject"]
        yield {"id": str(record["case_id"]), "subject": subject, "relation": rewrite["relation_id"],
               "prompt": rewrite["prompt"].replace("{}", subject),
               "target_true": " " + rewrite["target_true"]["str"].strip(),
               "target_new": " " + rewrite["target_new"]["str"].strip(),
               "paraphrases": list(record.get("paraphrase_prompts") or []),
               "neighborhood_prompts": list(record.get("neighborhood_prompts") or [])}


def counterfact_choices(rows: list[dict], seed: int) -> list[dict]:
    """Two-way multiple choice between the true and the counterfactual target, in a seeded order."""
    finished = []
    for row in rows:
        true_first = unit("choice order", seed, row["id"]) < 0.5
        choices = [row["target_true"], row["target_new"]] if true_first else [row["target_new"], row["target_true"]]
        finished.append({"id": row["id"], "prompt": row["prompt"], "choices": choices, "label": 0 if true_first else 1,
                         "subject": row["subject"], "relation": row["relation"], "target_true": row["target_true"],
                         "target_new": row["target_new"], "paraphrases": row["paraphrases"],
                         "neighborhood_prompts": row["neighborhood_prompts"]})
    return finished


# --- Python code (streamed) ---------------------------------------------------------------------


def held_out_repository(repo_name: str) -> bool:
    """Whether a repository's files are in "eval": a stable hash of its name (seed-independent)."""
    return unit("held-out repository", 0, repo_name) < HELD_OUT_REPOSITORIES


def python_files(split: str, count: int) -> list[dict]:
    return list(_python_files(SOURCES["github_code"], split, count))


@lru_cache(maxsize=8)
def _python_files(source: HubSource, split: str, count: int) -> tuple[dict, ...]:
    rows, seen = [], set()
    for record in records(source, split):
        path, repository = record["path"], record["repo_name"]
        if not path.endswith(".py") or held_out_repository(repository) != (split == "eval"):
            continue
        row_id = f"{repository}/{path}"
        if row_id in seen:
            continue
        seen.add(row_id)
        rows.append({"id": row_id, "text": record["content"], "repository": repository,
                     "license": record.get("license") or ""})
        if len(rows) >= count:
            break
    return tuple(rows)


# --- the others ---------------------------------------------------------------------------------


def imdb_rows(records_, shipped: str):
    for index, record in enumerate(records_):
        text = re.sub(r"<br\s*/?>", "\n", record["text"]).strip()
        yield {"id": f"{shipped}/{index}", "prompt": f"{text}\nSentiment:", "choices": [" negative", " positive"],
               "label": int(record["label"]), "text": text}


def gsm8k_rows(records_, shipped: str):
    for index, record in enumerate(records_):
        yield gsm8k_row(f"{shipped}/{index}", record["question"], record["answer"])


def arc_rows(records_, shipped: str):
    for record in records_:
        labels = list(record["choices"]["label"])
        if record["answerKey"] not in labels:
            continue
        yield {"id": record["id"], "prompt": f"Question: {record['question'].strip()}\nAnswer:",
               "choices": _spaced(record["choices"]["text"]), "label": labels.index(record["answerKey"])}


def nq_rows(records_, shipped: str):
    for index, record in enumerate(records_):
        if record["answer"]:
            yield qa_row(f"{shipped}/{index}", record["question"], list(record["answer"]))


def contest_rows(records_, shipped: str):
    for index, record in enumerate(records_):
        row = contest_row(record, shipped, index)
        if row is not None:
            yield row


def xstest_rows(records_, shipped: str):
    for index, record in enumerate(records_):
        yield {"id": str(index), "prompt": record["prompt"], "category": record.get("type") or "",
               "source": "walledai/XSTest", "unsafe": int(str(record.get("label", "")).strip().lower() == "unsafe"),
               "focus": record.get("focus") or "", "note": record.get("note") or ""}


def harmbench_rows(records_, shipped: str):
    for index, record in enumerate(records_):
        if shipped == "contextual":
            context = (record.get("context") or "").strip()
            yield {"id": f"contextual/{index}",
                   "prompt": f"{context}\n\n---\n\n{record['prompt']}" if context else record["prompt"],
                   "category": record.get("category") or "", "source": "walledai/HarmBench:contextual",
                   "behaviour": record["prompt"], "context": context}
        else:
            yield {"id": str(index), "prompt": record["prompt"], "category": record.get("category") or "",
                   "source": "walledai/HarmBench:standard"}


# --- the registry -------------------------------------------------------------------------------


def _task(kind: str, key: str, mapper, train: tuple[str, ...], eval_: str, **options) -> Task:
    shipped = {split: shipped_rows(key, split, mapper) for split in SOURCES[key].files}
    return Task(kind=kind, package=None, shipped=shipped, train=train, eval=eval_, **options)


HUB_TASKS: dict[str, HubTask] = {}
"""Task name -> its hub loader."""


def hub_task_names() -> list[str]:
    return sorted(HUB_TASKS)


def has_hub_loader(name: str) -> bool:
    return name in HUB_TASKS


def get_hub_task(name: str) -> HubTask:
    if name not in HUB_TASKS:
        raise UsageError(f"source='hub' has no loader for task={name!r}; tasks with one: {', '.join(hub_task_names())}")
    return HUB_TASKS[name]


def _register(name: str, key: str, task: Task, **options) -> None:
    HUB_TASKS[name] = HubTask(key, task, **options)


_register("counterfact", "counterfact",
          _task("multiple_choice", "counterfact", counterfact_facts, ("train",), "test", finish=counterfact_choices,
                split_group="counterfact-hub"))
_register("facts", "counterfact", _task("fact", "counterfact", counterfact_facts, ("train",), "test",
                                        split_group="counterfact-hub"))
_register("python_code", "github_code",
          Task(kind="corpus", package=None,
               shipped={split: (lambda split=split: python_files(split, STREAMED_ROWS[split]))
                        for split in ("train", "eval")},
               train=("train",), eval="eval"),
          stream=python_files, default_rows=STREAMED_ROWS)
_register("imdb", "imdb", _task("multiple_choice", "imdb", imdb_rows, ("train",), "test"))
_register("gsm8k", "gsm8k", _task("generative", "gsm8k", gsm8k_rows, ("train",), "test"))
_register("arc_easy", "arc_easy", _task("multiple_choice", "arc_easy", arc_rows, ("train",), "test"))
_register("arc_challenge", "arc_challenge", _task("multiple_choice", "arc_challenge", arc_rows, ("train",), "test"))
_register("naturalqs", "nq_open", _task("generative", "nq_open", nq_rows, ("train",), "validation"))
_register("code_contests", "code_contests", _task("code", "code_contests", contest_rows, ("train",), "test"))
_register("xstest", "xstest", _task("safety", "xstest", xstest_rows, ("test",), "test"))
_register("harmbench", "harmbench", _task("safety", "harmbench", harmbench_rows, ("all",), "all"))
