"""Data-parallel ``train`` under torchrun on the gloo backend: the same steps as one process, checkpoints
registered once, resume after one rank is killed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from forgetting.errors import UsageError
from forgetting.training.stage import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = {"block_size": 32, "batch_size": 4, "eval_blocks": 2, "lr": 1e-3, "precision": "fp32", "device": "cpu"}
# Summation order differs between one process and two (DDP all-reduces the gradient), so fp32
# losses agree to rounding, not bit for bit.
LOSS_TOLERANCE = 1e-4


def train_command(model, name: str, gpus: int, steps: int, every: int) -> list[str]:
    args = [sys.executable, "entrypoints/train.py", "--model", str(model), "--steps", str(steps),
            "--checkpoint-every", str(every), "--register-as", name, "--gpus", str(gpus)]
    for key, value in TINY.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def finished_run(name: str):
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"params.register_as = '{name}'",
                              output_format="list")
    return next(r for r in runs if r.info.status == "FINISHED"), runs


def losses(run_id: str, key: str = "train_loss") -> dict[int, float]:
    return {m.step: m.value for m in mlflow.MlflowClient().get_metric_history(run_id, key)}


def registered_steps(name: str) -> list[int]:
    return sorted(int(v.tags["step"]) for v in mlflow.MlflowClient().search_model_versions(f"name = '{name}'"))


@pytest.mark.e2e
def test_two_gloo_processes_take_the_steps_of_one_process_on_the_same_global_batch(
        store, tiny_checkpoint_with_tokenizer):
    steps, every = 6, 3
    for name, gpus in (("tiny-one", 1), ("tiny-two", 2)):
        done = subprocess.run(train_command(tiny_checkpoint_with_tokenizer, name, gpus, steps, every), cwd=ROOT,
                              env=environment(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    one, _ = finished_run("tiny-one")
    two, runs = finished_run("tiny-two")
    assert len(runs) == 1, "rank 1 created no run of its own"
    assert two.data.metrics["processes"] == 2 and one.data.metrics["processes"] == 1
    assert sorted(losses(two.info.run_id)) == list(range(1, steps + 1))
    for step, loss in losses(one.info.run_id).items():
        assert abs(losses(two.info.run_id)[step] - loss) <= LOSS_TOLERANCE, step
    for step, loss in losses(one.info.run_id, "heldout_loss").items():
        assert abs(losses(two.info.run_id, "heldout_loss")[step] - loss) <= LOSS_TOLERANCE, step
    assert registered_steps("tiny-two") == [0, 3, 6], "each checkpoint registered once, by rank 0"
    assert two.data.tags["forgetting.device"] == "cpu" and two.data.metrics["peak_gpu_memory_mb"] == 0


def descendants(pid: int) -> list[int]:
    children = [int(child) for task in Path(f"/proc/{pid}/task").glob("*")
                for child in (task / "children").read_text().split()]
    return children + [grandchild for child in children for grandchild in descendants(child)]


def worker_with_rank(launcher: subprocess.Popen, rank: int) -> int | None:
    """The pid of the torchrun process of ``rank`` (the stage starts torchrun, torchrun its processes)."""
    for pid in descendants(launcher.pid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return pid
    return None


@pytest.mark.e2e
@pytest.mark.parametrize("resumed_on", [2, 1])
def test_training_resumes_after_one_rank_is_killed(resumed_on, store, tiny_checkpoint_with_tokenizer):
    """The state holds whole tensors keyed by name, so the rerun may use another number of processes."""
    steps, every = 24, 4
    command = train_command(tiny_checkpoint_with_tokenizer, "tiny-killed", 2, steps, every)
    launcher = subprocess.Popen(command, cwd=ROOT, env=environment(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    resume = Path(os.environ["FORGETTING_HOME"]) / "resume"
    deadline = time.time() + 180

    def saved():  # a complete state past step 0: its folder is named by the cache key alone
        return [path for path in resume.glob("*/trainer.pt") if "." not in path.parent.name]

    while not saved() and launcher.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    victim = worker_with_rank(launcher, 1)
    assert saved() and victim, "training ended before a rank could be killed"
    os.kill(victim, signal.SIGKILL)
    assert launcher.wait(timeout=120) != 0, "torchrun reports the lost rank"

    command = train_command(tiny_checkpoint_with_tokenizer, "tiny-killed", resumed_on, steps, every)
    done = subprocess.run(command, cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    finished, runs = finished_run("tiny-killed")
    assert finished.data.metrics["processes"] == resumed_on
    [failed] = [r for r in runs if r.info.status != "FINISHED"]
    assert failed.info.status == "FAILED" and finished.data.tags["forgetting.resumed_from"] == failed.info.run_id
    assert finished.data.metrics["train_tokens"] < steps * TINY["batch_size"] * TINY["block_size"]
    assert sorted(losses(finished.info.run_id)) == list(range(1, steps + 1))
    assert registered_steps("tiny-killed") == list(range(0, steps + 1, every))
    assert not list(resume.iterdir()), "the resume state is deleted once the stage finishes"


@pytest.mark.parametrize("changes, message", [
    ({"gpus": 2, "batch_size": 3}, "batch_size=3 must be a multiple of gpus=2"),
    ({"gpus": 2, "device": "cpu", "parallel": "fsdp"}, "parallel='fsdp' shards a model over CUDA GPUs"),
    ({"parallel": "tp"}, "parallel='tp' is not one of: ddp, fsdp"),
])
def test_train_config_rejects_a_batch_that_does_not_split(changes, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig(**changes).validate()


def test_too_many_gpus_is_one_line_before_any_run(store, tiny_checkpoint_with_tokenizer):
    done = subprocess.run([sys.executable, "entrypoints/train.py", "--model", str(tiny_checkpoint_with_tokenizer),
                           "--gpus", "64", "--batch-size", "64", "--device", "cpu"], cwd=ROOT, env=environment(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: gpus=64 CPU processes is more than")
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.e2e
@pytest.mark.parametrize("method", ["gt-sft", "pi"])
def test_posttrain_runs_data_parallel_and_registers_once(method, store, tiny_checkpoint_with_tokenizer):
    """TRL's trainer (gt-sft) and π-Distill's own loop (gradients averaged over the processes)."""
    name = f"tiny-{method}-two"
    done = subprocess.run([sys.executable, "entrypoints/posttrain.py", "--model", str(tiny_checkpoint_with_tokenizer),
                           "--method", method, "--gpus", "2", "--device", "cpu", "--precision", "fp32", "--steps", "4",
                           "--batch-size", "4", "--n", "8", "--max-length", "128", "--max-new-tokens", "8",
                           "--lr", "3e-3", "--register-as", name],
                          cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run, runs = finished_run(name)
    assert len(runs) == 1 and run.data.metrics["objective_steps"] > 0
    assert len(mlflow.MlflowClient().search_model_versions(f"name = '{name}'")) == 1
    assert run.data.tags["forgetting.device"] == "cpu"


@pytest.fixture
def tiny_classifier(tmp_path):
    """A tiny random-init Llama sequence classifier with the bundled tokenizer: a teacher spec."""
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    from forgetting.models.bundled import bundled_model_dir
    from forgetting.models.tiny import tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir())
    config = tiny_llama(vocab_size=len(tokenizer)).config
    config.num_labels, config.pad_token_id = 2, tokenizer.eos_token_id
    path = tmp_path / "tiny-classifier"
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.e2e
def test_distill_on_two_gloo_processes_takes_the_steps_of_one(store, tiny_classifier):
    for name, gpus in (("student-one", 1), ("student-two", 2)):
        done = subprocess.run([sys.executable, "entrypoints/distill.py", "--teacher", str(tiny_classifier),
                               "--student", "layers:1", "--steps", "4", "--batch-size", "4", "--train-limit", "16",
                               "--eval-limit", "8", "--precision", "fp32", "--device", "cpu", "--gpus", str(gpus),
                               "--register-as", name], cwd=ROOT, env=environment(), capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    one, _ = finished_run("student-one")
    two, runs = finished_run("student-two")
    assert len(runs) == 1 and len(mlflow.MlflowClient().search_model_versions("name = 'student-two'")) == 1
    assert sorted(losses(two.info.run_id, "distill_loss")) == [1, 2, 3, 4]
    for step, loss in losses(one.info.run_id, "distill_loss").items():
        assert abs(losses(two.info.run_id, "distill_loss")[step] - loss) <= LOSS_TOLERANCE, step
    assert two.data.metrics["student_accuracy"] == pytest.approx(one.data.metrics["student_accuracy"])
