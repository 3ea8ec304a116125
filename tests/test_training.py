"""Continued training (checkpoints, resume after SIGKILL), fine-tuning and the learning-rate sweep."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import torch

from forgetting.errors import UsageError
from forgetting.models import load_model
from forgetting.sweep import open_lr_study, pending_grid_values
from forgetting.training.finetune import IGNORE, answer_batches, answer_examples, answer_loss, finetune_on_answers
from forgetting.training.finetune_stage import FinetuneConfig
from forgetting.training.stage import CHECKPOINTS_TAG, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = {"block_size": 32, "batch_size": 2, "eval_blocks": 2, "lr": 1e-3, "precision": "fp32"}
TINY_FINETUNE = {"train_limit": 16, "eval_limit": 16, "batch_size": 8, "precision": "fp32"}


@pytest.mark.parametrize("changes, message", [
    ({"steps": 0}, "steps=0 is outside"),
    ({"steps": 10, "checkpoint_every": 20}, r"checkpoint_every=20 is outside \[1, 10\]"),
    ({"lr": 0.0}, r"lr=0.0 is outside \(0"),
    ({"warmup_fraction": 1.0}, "warmup_fraction=1.0"),
    ({"precision": "fp8"}, "precision='fp8' is not one of"),
])
def test_train_config_rejects_bad_input(changes, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig(**changes).validate()


def test_checkpoints_fall_at_zero_every_n_and_the_end():
    assert TrainConfig(steps=10, checkpoint_every=4).checkpoint_steps() == [0, 4, 8, 10]
    assert TrainConfig(steps=6, checkpoint_every=6).checkpoint_steps() == [0, 6]


@pytest.mark.parametrize("changes, message", [
    ({"task": "gsm8k"}, "task='gsm8k' is not one of"),
    ({"lrs": "1e-5,fast"}, "lrs='1e-5,fast' is not a comma-separated list"),
    ({"lrs": "-1e-5"}, "lrs='-1e-5'"),
    ({"sampler": "random"}, "sampler='random' is not one of: grid, tpe"),
    ({"sampler": "tpe", "lr_min": 1e-3, "lr_max": 1e-4}, "lr_max=0.0001 is outside"),
    ({"storage": "redis://x"}, "storage='redis://x' is not an RDB URL"),
])
def test_finetune_config_rejects_bad_input(changes, message):
    with pytest.raises(UsageError, match=message):
        FinetuneConfig(**changes).validate()


def test_published_learning_rate_lists_are_the_default_grid():
    assert FinetuneConfig(task="counterfact").learning_rates() == (1e-6, 5e-6, 1e-5, 5e-5, 1e-4)
    assert FinetuneConfig(task="arc_easy").learning_rates() == (1e-6, 5e-6, 1e-5, 2e-5, 5e-5)
    assert FinetuneConfig(sampler="tpe").learning_rates() is None


def counterfact_rows(count=16):
    from forgetting.data import load_task

    return load_task("counterfact", "train", limit=count)


def test_answer_batches_train_on_the_answer_tokens_only(tiny_checkpoint_with_tokenizer):
    _, tokenizer = load_model(str(tiny_checkpoint_with_tokenizer))
    rows = counterfact_rows(4)
    examples = answer_examples(tokenizer, rows)
    [batch] = answer_batches(examples, 4, tokenizer.pad_token_id, torch.Generator().manual_seed(0))
    answers = sorted(tuple(ids[labels != IGNORE].tolist()) for ids, labels in zip(batch["input_ids"], batch["labels"]))
    assert answers == sorted(tuple(answer) for _, answer in examples)
    assert (batch["attention_mask"].sum(1).sort().values
            == torch.tensor(sorted(len(c) + len(a) for c, a in examples))).all()


def test_answer_loss_is_the_models_loss_and_its_gradient(tiny_checkpoint_with_tokenizer):
    model, tokenizer = load_model(str(tiny_checkpoint_with_tokenizer))
    [batch] = answer_batches(answer_examples(tokenizer, counterfact_rows(6)), 6, tokenizer.pad_token_id,
                             torch.Generator().manual_seed(0))
    ours = answer_loss(model, batch)
    ours.backward()
    ours_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    theirs = model(**batch).loss
    theirs.backward()
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(ours_grads, model.parameters()))
    # one answer token fewer gives another loss: the selected positions are the answers'
    cut = dict(batch, labels=batch["labels"].clone())
    row, column = (cut["labels"] != IGNORE).nonzero()[0]
    cut["labels"][row, column] = IGNORE
    assert not torch.allclose(answer_loss(model, cut), ours)


def test_finetuning_lowers_the_answer_loss(tiny_checkpoint_with_tokenizer):
    model, tokenizer = load_model(str(tiny_checkpoint_with_tokenizer))
    rows = counterfact_rows(16)
    losses = []
    finetune_on_answers(model, tokenizer, rows, lr=3e-3, epochs=3, batch_size=8,
                        after_epoch=lambda epoch, loss: losses.append(loss))
    assert len(losses) == 3 and losses[-1] < losses[0] - 0.5


def test_grid_study_resumes_with_the_values_it_has_not_finished(store):
    study = open_lr_study("grid", "", (1e-5, 1e-4, 1e-3))
    study.optimize(lambda trial: trial.suggest_float("lr", 1e-5, 1e-3, log=True), n_trials=1)
    again = open_lr_study("grid", "", (1e-5, 1e-4, 1e-3))
    assert len(pending_grid_values(again, (1e-5, 1e-4, 1e-3))) == 2
    again.optimize(lambda trial: trial.suggest_float("lr", 1e-5, 1e-3, log=True), n_trials=2)
    assert sorted(t.params["lr"] for t in again.trials) == [1e-5, 1e-4, 1e-3]


def test_unreachable_study_storage_is_one_clear_error(store):
    with pytest.raises(UsageError, match="storage='postgresql://nobody@127.0.0.1:9/x' is unreachable"):
        open_lr_study("x", "postgresql://nobody@127.0.0.1:9/x", (1e-5,))


def test_finetune_stage_logs_baseline_best_and_one_nested_run_per_trial(store, tiny_checkpoint_with_tokenizer):
    from forgetting.stages import finetune_stage

    config = FinetuneConfig(model=str(tiny_checkpoint_with_tokenizer), lrs="1e-4,3e-3", **TINY_FINETUNE)
    run = finetune_stage(config)
    metrics, params = run.data.metrics, run.data.params
    trials = mlflow.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'",
                                output_format="list")
    assert sorted(float(t.data.params["lr"]) for t in trials) == [1e-4, 3e-3]
    assert metrics["best_acc"] == max(t.data.metrics["accuracy"] for t in trials)
    assert metrics["best_lr"] in (1e-4, 3e-3) and "baseline_acc" in metrics
    assert params["lrs"] == "0.0001,0.003" and params["method"] == "none" and params["step"] == "0"
    assert params["eval_rows"] == "16" and params["train_rows"] == "16"
    from forgetting.scoring.intervals import rate

    for name in ("baseline_acc", "best_acc"):  # Wilson intervals over the 16 eval rows
        expected = rate(name, round(metrics[name] * 16), 16)
        assert metrics[f"{name}_ci_low"] == pytest.approx(expected[f"{name}_ci_low"])
        assert metrics[f"{name}_ci_low"] < metrics[f"{name}_ci_high"]
    again = finetune_stage(config)
    assert again.info.run_id == run.info.run_id


def test_a_finished_trials_model_is_freed_without_a_garbage_collection(store, tiny_checkpoint_with_tokenizer,
                                                                       monkeypatch):
    """The sweep runs no full collection after each trial (0.4 s each in the quick grid), so nothing may keep a
    trial's copy of the model in a reference cycle: with the collector off, every copy is gone once its trial ends."""
    import gc
    import weakref

    from forgetting.stages import finetune_stage
    from forgetting.training.finetune import AnswerFinetuning

    copies, train = [], AnswerFinetuning.train

    def watched(self, model, lr, after_epoch):
        copies.append(weakref.ref(model))
        train(self, model, lr, after_epoch)

    monkeypatch.setattr(AnswerFinetuning, "train", watched)
    gc.collect()
    gc.disable()
    try:
        finetune_stage(FinetuneConfig(model=str(tiny_checkpoint_with_tokenizer), lrs="1e-4,3e-3", **TINY_FINETUNE))
        assert len(copies) == 2 and all(copy() is None for copy in copies)
    finally:
        gc.enable()


def test_tpe_sweep_runs_its_trial_budget(store, tiny_checkpoint_with_tokenizer):
    from forgetting.stages import finetune_stage

    run = finetune_stage(FinetuneConfig(model=str(tiny_checkpoint_with_tokenizer), sampler="tpe", n_trials=2,
                                        epochs=2, **TINY_FINETUNE))
    assert run.data.metrics["n_trials"] + len(optuna.load_study(
        study_name=f"finetune-{run.data.tags['forgetting.cache_key']}",
        storage=f"sqlite:///{os.environ['FORGETTING_HOME']}/optuna.db").get_trials(
        states=(optuna.trial.TrialState.PRUNED,))) == 2
    assert "lr_min" in run.data.params and "n_trials" in run.data.params


def test_bad_train_input_creates_no_run(store, tiny_checkpoint_with_tokenizer):
    from forgetting.stages import train_stage
    from forgetting.tracking import experiment_id

    with pytest.raises(UsageError, match="checkpoint_every=5 is outside"):
        train_stage(TrainConfig(model=str(tiny_checkpoint_with_tokenizer), steps=4, checkpoint_every=5))
    assert mlflow.search_runs([experiment_id("unlearning")], output_format="list") == []


def train_command(model, steps, every, register_as="tiny-python", **extra):
    args = [sys.executable, "entrypoints/train.py", "--model", str(model), "--steps", str(steps),
            "--checkpoint-every", str(every), "--register-as", register_as]
    for key, value in (TINY_TRAIN | extra).items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def kill_once_a_state_is_saved(command: list[str], env: dict) -> list[Path]:
    """Start ``command``, SIGKILL it once it saved a complete resume state; that state's trainer files."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume = Path(os.environ["FORGETTING_HOME"]) / "resume"
    deadline = time.time() + 120

    def saved():  # a complete state: its folder is named by the cache key alone (no .partial/.old)
        return [path for path in resume.glob("*/trainer.pt") if "." not in path.parent.name]

    while not saved() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert saved(), "training ended before it could be killed"
    return saved()


def test_killed_training_resumes_from_its_last_checkpoint_without_duplicate_versions(
        store, tiny_checkpoint_with_tokenizer, tmp_path):
    from forgetting.tracking import experiment_id

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    steps, every = 30, 5
    kill_once_a_state_is_saved(train_command(tiny_checkpoint_with_tokenizer, steps, every), env)
    resume = Path(os.environ["FORGETTING_HOME"]) / "resume"

    finished = subprocess.run(train_command(tiny_checkpoint_with_tokenizer, steps, every), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    runs = mlflow.search_runs([experiment_id("unlearning")], output_format="list")
    [done] = [r for r in runs if r.info.status == "FINISHED"]
    [killed] = [r for r in runs if r.info.status != "FINISHED"]
    assert killed.info.status == "KILLED" and done.data.tags["forgetting.resumed_from"] == killed.info.run_id
    assert done.data.metrics["train_tokens"] < steps * TINY_TRAIN["batch_size"] * TINY_TRAIN["block_size"]
    history = mlflow.MlflowClient().get_metric_history(done.info.run_id, "heldout_loss")
    assert sorted(m.step for m in history) == list(range(0, steps + 1, every))
    versions = mlflow.MlflowClient().search_model_versions("name = 'tiny-python'")
    assert sorted(int(v.tags["step"]) for v in versions) == list(range(0, steps + 1, every))
    assert sorted(json.loads(done.data.tags[CHECKPOINTS_TAG]), key=int) == [str(s) for s in range(0, steps + 1, every)]
    assert not list(resume.iterdir()), "the resume state is deleted once the stage finishes"


def test_killed_bf16_training_resumes_from_its_fp32_state(store, tiny_checkpoint_with_tokenizer):
    """bf16 checkpoints are registered while the resume state keeps fp32 weights: the resumed run ends with
    the weights of a run that was never killed."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from forgetting.tracking import resolve_checkpoint

    def dtypes(folder):
        with safe_open(Path(folder) / "model.safetensors", "pt") as handle:
            return {handle.get_slice(key).get_dtype() for key in handle.keys()}

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    steps, every, model = 30, 5, tiny_checkpoint_with_tokenizer
    command = train_command(model, steps, every, checkpoint_dtype="bf16")
    [state] = kill_once_a_state_is_saved(command, env)
    assert dtypes(state.parent / "model") == {"F32"}, "the resume state keeps fp32 weights"
    state_step = torch.load(state, weights_only=True)["step"]
    state_weights = load_file(state.parent / "model" / "model.safetensors")

    for args in (command, train_command(model, steps, every, "tiny-reference", checkpoint_dtype="bf16")):
        finished = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert finished.returncode == 0, finished.stderr[-2000:]
    at_kill = load_file(resolve_checkpoint(f"models:/tiny-python@step-{state_step}") / "model.safetensors")
    assert all(torch.equal(at_kill[k], state_weights[k].to(torch.bfloat16)) for k in state_weights)
    last, reference = (resolve_checkpoint(f"models:/{name}@step-{steps}") for name in ("tiny-python", "tiny-reference"))
    assert dtypes(last) == dtypes(reference) == {"BF16"}
    resumed, uninterrupted = load_file(last / "model.safetensors"), load_file(reference / "model.safetensors")
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)
    assert sorted(int(v.tags["step"]) for v in mlflow.MlflowClient().search_model_versions(
        "name = 'tiny-python'")) == list(range(0, steps + 1, every))


def test_the_last_state_skips_the_optimizer_and_resumes_to_registration(tmp_path):
    """The optimizer (twice the weights) is kept only where training goes on; a state without one restores
    its step and leaves a fresh optimizer untouched."""
    from forgetting.models.tiny import tiny_llama
    from forgetting.training.optimizer import adamw_with_warmup
    from forgetting.training.stage import _full_state, _restore

    model = tiny_llama()
    optimizer, scheduler = adamw_with_warmup(model, 1e-3, 4)
    model(input_ids=torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss.backward()
    optimizer.step()
    _, middle = _full_state(model, optimizer, scheduler, 2)
    _, last = _full_state(model, optimizer, scheduler, 4, with_optimizer=False)
    assert middle["optimizer"]["state"] and last["optimizer"] is None
    model.zero_grad(set_to_none=True)  # as in a new process
    fresh, fresh_scheduler = adamw_with_warmup(model, 1e-3, 4)
    assert _restore((tmp_path, last), model, fresh, fresh_scheduler) == 4 and not fresh.state
    assert _restore((tmp_path, middle), model, fresh, fresh_scheduler) == 2 and fresh.state


def test_adamw_is_fused_on_a_cpu():
    from forgetting.training.optimizer import adamw

    assert adamw(torch.nn.Linear(2, 2).parameters(), lr=1e-3).defaults["fused"]
