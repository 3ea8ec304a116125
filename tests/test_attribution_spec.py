"""Every attribution method is a complete spec, and a new one is one file plus one registration line."""
import dataclasses
import inspect

import pytest

from forgetting.attribution import ATTRIBUTION_METHODS
from forgetting.attribution.spec import AttributionMethod
from forgetting.attribution.stage import COMMON_FIELDS, AttributeConfig, attribute
from forgetting.errors import UsageError

CONFIG_FIELDS = {field.name for field in dataclasses.fields(AttributeConfig)}
DATA = ("model", "train", "sources", "test")  # what the stage hands every method, in this order


def another(value):
    """A different value of a config field's type."""
    return not value if isinstance(value, bool) else value + ("x" if isinstance(value, str) else 1)


@pytest.mark.parametrize("name", ATTRIBUTION_METHODS.in_registration_order())
def test_every_attribution_method_is_complete(name):
    """A registered method resolves to a function of the data and keyword options only (no catch-all),
    declares only config fields beyond the common ones, and a default config gives it exactly the
    keywords it takes (with ``checkpoints`` where it reads them); each field it declares reaches them."""
    method = ATTRIBUTION_METHODS.get(name)
    assert isinstance(method, AttributionMethod)
    parameters = inspect.signature(method.score).parameters
    assert tuple(parameters)[:len(DATA)] == DATA
    assert all(p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters.values())
    assert set(method.fields) <= CONFIG_FIELDS - set(COMMON_FIELDS) - {"checkpoints"}, set(method.fields)
    assert len(set(method.fields)) == len(method.fields)
    config = AttributeConfig(method=name)
    config.validate()
    options = method.options_of(config)
    assert set(options) | ({"checkpoints"} if method.needs_checkpoints else set()) == set(tuple(parameters)[len(DATA):])
    assert set(method.fields) <= set(config.params())
    for field in method.fields:
        changed = dataclasses.replace(config, **{field: another(getattr(config, field))})
        assert method.options_of(changed) != options, field


def test_every_config_field_is_in_the_cache_key_of_some_method():
    """A field no method declares and the stage does not read would never reach a run's parameters."""
    own = {field for name in ATTRIBUTION_METHODS for field in ATTRIBUTION_METHODS.get(name).fields}
    assert CONFIG_FIELDS == set(COMMON_FIELDS) | {"checkpoints"} | own
    assert set(AttributeConfig(method="all").params()) == CONFIG_FIELDS


def test_an_untrac_run_leaves_tracin_fields_and_the_checkpoints_out_of_its_parameters():
    config = AttributeConfig(method="untrac")
    assert set(config.params()) == {*COMMON_FIELDS, "unlearning_rate", "unlearning_steps", "gradient_checkpointing"}
    assert not config.keeps_checkpoints()
    assert dataclasses.replace(config, tracin_parameters="mlp", checkpoints=5).params() == config.params()
    assert {"tracin_parameters", "checkpoints"} <= set(AttributeConfig(method="untrac,tracin").params())


@pytest.fixture
def loss_baseline():
    ATTRIBUTION_METHODS.register("loss", AttributionMethod("plugin_loss_baseline:loss_scores", options="plugin_loss_baseline:stage_options"))  # noqa: E501
    yield "loss"
    ATTRIBUTION_METHODS.unregister("loss")


def test_a_method_added_in_one_file_and_one_registration_line_runs_in_the_attribute_stage(
        loss_baseline, store, tiny_checkpoint_with_tokenizer, monkeypatch):
    """Checked, keyed by the common fields alone, run and logged like the built-in methods; the mixture's
    training keeps no checkpoints for it."""
    import mlflow

    from forgetting.attribution import mixtures

    test_every_attribution_method_is_complete(loss_baseline)
    with pytest.raises(UsageError, match="method='loss-x' is not one of"):
        AttributeConfig(method="loss-x").validate()
    config = AttributeConfig(model=str(tiny_checkpoint_with_tokenizer), method=loss_baseline, examples_per_source=2,
                             test_examples=2, train_steps=2, batch_size=4, max_length=32)
    config.validate()
    assert tuple(config.params()) == COMMON_FIELDS
    kept = []
    training = mixtures.train_on_mixture
    monkeypatch.setattr(mixtures, "train_on_mixture", lambda *args, checkpoints, **kwargs: kept.append(checkpoints)
                        or training(*args, checkpoints=checkpoints, **kwargs))
    with mlflow.start_run() as run:
        metrics = attribute(config)
    assert kept == [0]
    assert 1 <= metrics["rank_loss"] <= 5 and metrics["runtime_s_loss"] > 0
    table = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/attribution/loss_sources.json")
    assert {row[0] for row in table["data"]} == {"python", "gsm8k", "sst2", "facts", "planted"}


def test_the_attribute_stage_keys_its_run_by_the_fields_its_methods_read(
        loss_baseline, store, tiny_checkpoint_with_tokenizer):
    """Another value of a field only other methods read reuses the run; another common field does not."""
    from forgetting.stages import attribute_stage

    config = AttributeConfig(model=str(tiny_checkpoint_with_tokenizer), method=loss_baseline, examples_per_source=2,
                             test_examples=2, train_steps=2, batch_size=4, max_length=32)
    run = attribute_stage(config)
    assert {name for name in run.data.params if not name.startswith("upstream_") and not name.endswith("_weights")} \
        == set(COMMON_FIELDS)
    unread = dataclasses.replace(config, tracin_parameters="mlp", unlearning_steps=2, checkpoints=1)
    assert attribute_stage(unread).info.run_id == run.info.run_id
    assert attribute_stage(dataclasses.replace(config, max_length=24)).info.run_id != run.info.run_id
