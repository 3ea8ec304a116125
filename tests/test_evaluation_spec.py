"""Every evaluation suite is a complete spec, and a new one is one file plus one registration line."""
import dataclasses

import pytest

from forgetting.errors import UsageError
from forgetting.evaluation.spec import EvaluationSuite
from forgetting.evaluation.suites import COMMON_FIELDS, EVALUATION_SUITES, EvaluateConfig, suite_parts
from forgetting.registry import load

CONFIG_FIELDS = {field.name for field in dataclasses.fields(EvaluateConfig)}


@pytest.mark.parametrize("name", EVALUATION_SUITES.in_registration_order())
def test_every_evaluation_suite_is_complete(name):
    """A registered suite resolves to a run function, a check and a summary line, and declares only
    config fields beyond the common ones; the combined one declares nothing of its own and runs only
    suites that are not combined."""
    suite = EVALUATION_SUITES.get(name)
    assert isinstance(suite, EvaluationSuite)
    if suite.combined:
        assert not (suite.runner or suite.fields or suite.checker or suite.summarizer or suite.in_all)
        assert suite_parts(name) and all(not EVALUATION_SUITES.get(part).combined for part in suite_parts(name))
        return
    assert all(callable(load(function)) for function in (suite.runner, suite.checker, suite.summarizer))
    assert set(suite.fields) <= CONFIG_FIELDS - set(COMMON_FIELDS), set(suite.fields) - CONFIG_FIELDS
    assert len(set(suite.fields)) == len(suite.fields)
    assert suite_parts(name) == [name]


def test_a_run_reads_the_fields_of_its_suites_and_all_reads_every_in_all_suite():
    assert tuple(EvaluateConfig(suite="probes").params()) == (*COMMON_FIELDS, "probe_c")
    everything = EvaluateConfig(suite="all").params()
    for part in suite_parts("all"):
        assert set(EVALUATION_SUITES.get(part).fields) <= set(everything)
    assert "top_k" not in everything and "probe_c" not in everything


@pytest.fixture
def prompt_loss():
    EVALUATION_SUITES.register("prompt-loss", EvaluationSuite("plugin_prompt_loss:evaluate_prompt_loss", ("task", "split", "limit"), "plugin_prompt_loss:check_prompt_loss", "plugin_prompt_loss:prompt_loss_summary"))  # noqa: E501
    yield
    EVALUATION_SUITES.unregister("prompt-loss")


def test_a_suite_added_in_one_file_and_one_registration_line_runs_in_the_evaluate_stage(
        prompt_loss, store, tiny_checkpoint_with_tokenizer, capsys):
    """Checked, run, summarised and cached by its own fields through the evaluate stage: a run shows the
    common parameters and the suite's, another ``limit`` is a new run, another GCG budget is not."""
    from forgetting.stages import LINEAGE_KEYS, evaluate_stage

    test_every_evaluation_suite_is_complete("prompt-loss")
    with pytest.raises(UsageError, match="task='nope'"):
        EvaluateConfig(suite="prompt-loss", task="nope").validate()
    config = EvaluateConfig(model=str(tiny_checkpoint_with_tokenizer), suite="prompt-loss", task="arc_easy", limit=3)
    run = evaluate_stage(config)
    shown = {name for name in run.data.params if not name.startswith("upstream_") and not name.endswith("_weights")}
    assert shown == {*COMMON_FIELDS, "task", "split", "limit", *LINEAGE_KEYS}
    assert run.data.metrics["n_rows"] == 3 and run.data.metrics["prompt_loss_ci_low"] < run.data.metrics["prompt_loss"]
    assert "arc_easy prompts: loss" in capsys.readouterr().out
    assert evaluate_stage(dataclasses.replace(config, top_k=8)).info.run_id == run.info.run_id
    assert evaluate_stage(dataclasses.replace(config, limit=2)).info.run_id != run.info.run_id
