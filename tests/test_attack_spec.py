"""Every attack is a complete spec, and a new one is one file plus one registration line."""
import dataclasses

import pytest

from forgetting.attacks import ATTACKS
from forgetting.attacks.autodan import AutoDANConfig
from forgetting.attacks.gcg import GCGConfig
from forgetting.attacks.spec import Attack
from forgetting.errors import UsageError
from forgetting.evaluation.suites import EVALUATION_SUITES, EvaluateConfig


@pytest.mark.parametrize("name", ATTACKS.in_registration_order())
def test_every_attack_is_complete(name):
    """A registered attack resolves to a run function, its budgets are among the attacks suite's fields
    (they key its runs) and each is checked and reaches its search config; only a universal attack takes
    ``transfer_from``."""
    attack = ATTACKS.get(name)
    assert isinstance(attack, Attack) and callable(attack.run)
    assert set(attack.fields) <= set(EVALUATION_SUITES.get("attacks").fields), \
        set(attack.fields) - set(EVALUATION_SUITES.get("attacks").fields)
    config = EvaluateConfig(suite="attacks", attack=name)
    config.validate()
    assert attack.fields == () or attack.search_config(config) is not None
    for field in attack.fields:
        with pytest.raises(UsageError, match=f"{field}=0 is outside"):
            dataclasses.replace(config, **{field: 0}).validate()
        assert (attack.search_config(dataclasses.replace(config, **{field: 1}))
                != attack.search_config(dataclasses.replace(config, **{field: 2}))), f"{field} reaches no search"
    transferred = dataclasses.replace(config, transfer_from="an-earlier-run")
    if attack.universal:
        transferred.validate()
    else:
        with pytest.raises(UsageError, match=f"transfer_from needs attack='gcg-universal'.*, got attack='{name}'"):
            transferred.validate()


def test_search_configs_come_from_the_evaluate_config():
    config = EvaluateConfig(suite="attacks", steps=3, suffix_length=4, top_k=5, attack_batch=6, generations=7,
                            population=9, seed=11)
    gcg = GCGConfig(steps=3, suffix_length=4, top_k=5, batch=6, seed=11)
    assert ATTACKS.get("gcg").search_config(config) == ATTACKS.get("gcg-universal").search_config(config) == gcg
    assert ATTACKS.get("autodan").search_config(config) == AutoDANConfig(generations=7, population=9, seed=11)
    assert ATTACKS.names_where(lambda attack: attack.universal) == ["gcg-universal"]


def test_an_attack_is_checked_on_its_own_budgets_only():
    EvaluateConfig(suite="attacks", attack="gcg", population=0).validate()
    with pytest.raises(UsageError, match="population=0 is outside"):
        EvaluateConfig(suite="attacks", attack="autodan", population=0).validate()
    with pytest.raises(UsageError, match="attack='nope' is not one of: autodan, gcg, gcg-universal"):
        EvaluateConfig(suite="attacks", attack="nope").validate()


@pytest.fixture
def best_template():
    ATTACKS.register("best-template", Attack("plugin_best_template:attack_best_template", "plugin_best_template:search_config", ("population",), universal=True))  # noqa: E501
    yield
    ATTACKS.unregister("best-template")


def test_an_attack_added_in_one_file_and_one_registration_line_runs_in_the_attacks_suite(
        best_template, store, tiny_checkpoint_with_tokenizer, capsys):
    """Checked, run, logged and summarised through the evaluate stage, and its control transferred."""
    from forgetting.stages import evaluate_stage
    from forgetting.tracking.runs import logged_table

    test_every_attack_is_complete("best-template")
    config = EvaluateConfig(model=str(tiny_checkpoint_with_tokenizer), suite="attacks", attack="best-template",
                            limit=2, max_new_tokens=4, population=2)
    run = evaluate_stage(config)
    assert run.data.metrics["n_behaviours"] == 2 and 0 <= run.data.metrics["asr"] <= 1
    assert "best-template on 2 harmbench behaviours: ASR" in capsys.readouterr().out
    table = logged_table(run.info.run_id, "attacks/best-template.json")
    assert len(set(table["control"])) == 1 and "[PROMPT]" in table["control"].iloc[0]
    again = evaluate_stage(dataclasses.replace(config, transfer_from=run.info.run_id, population=1))
    assert again.info.run_id != run.info.run_id
    assert again.data.metrics["loss_after"] == pytest.approx(run.data.metrics["loss_after"], abs=1e-4)
    assert logged_table(again.info.run_id, "attacks/best-template.json")["control"].iloc[0] == table["control"].iloc[0]
    with pytest.raises(UsageError, match="transfer_from='nope' is not a finished best-template attacks run"):
        evaluate_stage(dataclasses.replace(config, transfer_from="nope"))
