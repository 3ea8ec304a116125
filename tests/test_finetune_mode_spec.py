"""Every fine-tune mode is a complete spec, and a new one is one file plus one registration line."""
import mlflow
import pytest

from forgetting.data import task_names
from forgetting.errors import UsageError
from forgetting.tracking.studies import classifier_study
from forgetting.training.finetune_mode import FinetuneMode
from forgetting.training.finetune_stage import FINETUNE_MODES, FinetuneConfig

TRIAL_METHODS = ("load", "evaluate", "train", "keep", "finish")  # what the sweep calls on a mode's runner


def accepted_tasks(mode: FinetuneMode) -> list[str]:
    accepted = []
    for task in task_names():
        try:
            mode.check_task(task)
        except UsageError:
            continue
        accepted.append(task)
    return accepted


@pytest.mark.parametrize("name", FINETUNE_MODES.in_registration_order())
def test_every_finetune_mode_is_complete(name):
    """A registered mode resolves to a class with the methods the sweep calls; it accepts some tasks and
    rejects the others in one line naming ``task``; its default grid for each is positive learning rates;
    a default config of it validates, and names the classifiers' study exactly when it fine-tunes one."""
    mode = FINETUNE_MODES.get(name)
    assert isinstance(mode, FinetuneMode)
    assert all(callable(getattr(mode.runner_class, method, None)) for method in TRIAL_METHODS)
    accepted = accepted_tasks(mode)
    assert 0 < len(accepted) < len(task_names())
    with pytest.raises(UsageError, match="^task='nope' is not one of: [^\n]+$"):
        mode.check_task("nope")
    for task in accepted:
        grid = mode.learning_rates(task)
        assert grid and all(isinstance(lr, float) and lr > 0 for lr in grid), (task, grid)
    config = FinetuneConfig(mode=name, task=accepted[0])
    config.validate()
    assert config.learning_rates() == mode.learning_rates(accepted[0])
    assert config.params()["lrs"] == ",".join(f"{lr:g}" for lr in mode.learning_rates(accepted[0]))
    assert config.study == (classifier_study() if mode.classifier else None)


def test_the_existing_modes_keep_their_tasks_and_grids():
    assert FinetuneConfig(mode="classification", task="sst2").learning_rates() == (2e-5, 5e-5, 1e-4)
    with pytest.raises(UsageError, match="^task='arc_easy' is not one of: imdb, sst2$"):
        FinetuneConfig(mode="classification", task="arc_easy").validate()
    with pytest.raises(UsageError, match="^mode='nope' is not one of: answer, classification$"):
        FinetuneConfig(mode="nope").validate()


@pytest.fixture
def last_layer():
    FINETUNE_MODES.register("last-layer", FinetuneMode("plugin_last_layer:LastLayerFinetuning", task_check="plugin_last_layer:check_task", default_lrs="plugin_last_layer:learning_rates"))  # noqa: E501
    yield
    FINETUNE_MODES.unregister("last-layer")


def test_a_mode_added_in_one_file_and_one_registration_line_runs_in_the_finetune_stage(
        last_layer, store, tiny_checkpoint_with_tokenizer):
    """Checked by its own task check, swept over its own grid, filed under the entry point's study, and
    trained by its own class in each trial."""
    from forgetting.stages import finetune_stage

    test_every_finetune_mode_is_complete("last-layer")
    with pytest.raises(UsageError, match="^task='arc_challenge' is not one of: arc_easy, counterfact$"):
        FinetuneConfig(mode="last-layer", task="arc_challenge").validate()
    config = FinetuneConfig(model=str(tiny_checkpoint_with_tokenizer), mode="last-layer", task="counterfact",
                            train_limit=16, eval_limit=16, batch_size=8, precision="fp32")
    assert config.learning_rates() == (1e-4, 1e-3) and config.study is None
    run = finetune_stage(config)
    assert run.data.params["mode"] == "last-layer" and run.data.params["lrs"] == "0.0001,0.001"
    trials = mlflow.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'",
                                output_format="list")
    assert sorted(float(t.data.params["lr"]) for t in trials) == [1e-4, 1e-3]
    assert all(0 < t.data.metrics["trained_fraction"] < 1 for t in trials)
    assert run.data.metrics["best_acc"] == max(t.data.metrics["accuracy"] for t in trials)
