"""The cluster backend of ``posttrain``: the same methods, run by verl on GPUs.

A method's spec names its verl trainer (``PosttrainMethod.verl_trainer``). ``sft`` (gt-sft, sf-sft,
cf-sft) runs ``verl.trainer.sft_trainer`` (config ``sft_trainer_engine``, launched with torchrun),
``grpo`` (on-rl) ``verl.trainer.main_ppo`` (config ``ppo_trainer``) with ``algorithm.adv_estimator=grpo``,
a vLLM rollout and our domain reward as ``custom_reward_function``. verl has no DPO, SPIN or π-Distill
trainer: those stay local.
The job is a list of Hydra overrides; ``check_overrides`` composes them against the installed
verl's own config files, which rejects any key verl does not have. verl logs to the stage's
MLflow run (``trainer.logger=[console,mlflow]`` with ``MLFLOW_RUN_ID`` set) and saves Hugging Face
weights (``hf_model``) that the stage registers.
"""
from __future__ import annotations

import importlib.util
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from forgetting.errors import UsageError
from forgetting.posttrain import POSTTRAIN_METHODS

REWARD_MODULE = Path(__file__).resolve().parents[1] / "rewards" / "verl_reward.py"
# The trainers this backend runs, and the metric each logs for the objective the local backend reports.
OBJECTIVES = {"sft": ("train/loss", False), "grpo": ("critic/score/mean", True)}


@dataclass(frozen=True)
class VerlJob:
    trainer: str              # sft or grpo
    config_name: str          # verl's Hydra config the overrides apply to
    launcher: tuple[str, ...]
    overrides: tuple[str, ...]

    def command(self) -> list[str]:
        return [*self.launcher, *self.overrides]

    def shell(self) -> str:
        return " \\\n    ".join([shlex.join(self.launcher), *map(shlex.quote, self.overrides)])


def check_cluster_method(method: str) -> None:
    if not POSTTRAIN_METHODS.get(method).verl_trainer:
        runs = POSTTRAIN_METHODS.names_where(lambda spec: spec.verl_trainer)
        raise UsageError(f"method={method!r} has no verl trainer; backend=cluster runs "
                         f"{', '.join(runs)} (use backend=local for the others)")


def verl_config_dir() -> Path:
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("backend=cluster needs verl installed (pip install verl==0.9.1 on the GPU machines)")
    return Path(spec.submodule_search_locations[0]) / "trainer" / "config"


def training_rows(trainer: str, data) -> list[dict]:
    """Rows in the parquet layout verl reads: chat ``messages`` for SFT, a ``prompt`` with the reward's
    ground truth for GRPO."""
    if trainer == "sft":
        pairs = data.ground_truth() if data.collected is None else data.collected
        return [{"messages": [{"role": "user", "content": pair["prompt"]},
                              {"role": "assistant", "content": pair["completion"]}]} for pair in pairs]
    return [{"data_source": data.domain.name, "prompt": [{"role": "user", "content": row["prompt"]}],
             "reward_model": {"style": "rule", "ground_truth": json.dumps(row)}, "extra_info": {"index": index}}
            for index, row in enumerate(data.prompts())]


def write_training_data(trainer: str, data, path: Path) -> Path:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(training_rows(trainer, data)).to_parquet(path)
    return path


def verl_job(config, model_dir: str, train_file: Path, output_dir: Path, gpus: int) -> VerlJob:
    trainer = POSTTRAIN_METHODS.get(config.method).verl_trainer
    common = [f"trainer.default_local_dir={output_dir}", "trainer.project_name=forgetting",
              f"trainer.experiment_name={config.method}-{config.domain}", "trainer.logger=[console,mlflow]",
              f"trainer.total_training_steps={config.steps}", f"trainer.save_freq={config.checkpoint_every}",
              "trainer.resume_mode=auto", f"trainer.n_gpus_per_node={gpus}", "trainer.nnodes=1"]
    if trainer == "sft":
        overrides = [f"data.train_files={train_file}", "data.messages_key=messages",
                     f"data.max_length={config.max_length}", f"data.train_batch_size={config.batch_size}",
                     "data.micro_batch_size_per_gpu=1", "data.truncation=left", f"model.path={model_dir}",
                     f"optim.lr={config.lr}", "checkpoint.save_contents=[model,optimizer,extra,hf_model]",
                     f"trainer.seed={config.seed}", *common]
        launcher = ("torchrun", "--standalone", "--nnodes=1", f"--nproc_per_node={gpus}", "-m",
                    "verl.trainer.sft_trainer")
        return VerlJob(trainer, "sft_trainer_engine", launcher, tuple(overrides))
    prompts_per_step = config.batch_size // config.num_generations
    overrides = ["algorithm.adv_estimator=grpo", f"data.train_files={train_file}", f"data.val_files={train_file}",
                 f"data.train_batch_size={prompts_per_step}", "data.max_prompt_length=512",
                 f"data.max_response_length={config.max_new_tokens}", "data.truncation=left",
                 f"actor_rollout_ref.model.path={model_dir}", f"actor_rollout_ref.actor.optim.lr={config.lr}",
                 f"actor_rollout_ref.actor.ppo_mini_batch_size={prompts_per_step}",
                 "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
                 f"actor_rollout_ref.actor.use_kl_loss={str(config.kl_coef > 0).lower()}",
                 f"actor_rollout_ref.actor.kl_loss_coef={config.kl_coef}",
                 "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
                 "actor_rollout_ref.rollout.name=vllm", f"actor_rollout_ref.rollout.n={config.num_generations}",
                 "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
                 "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=1",
                 "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=1",
                 f"reward.custom_reward_function.path={REWARD_MODULE}",
                 "reward.custom_reward_function.name=compute_score", "trainer.val_before_train=false",
                 "trainer.test_freq=-1", *common]
    return VerlJob(trainer, "ppo_trainer", ("python", "-m", "verl.trainer.main_ppo"), tuple(overrides))


def check_overrides(job: VerlJob) -> None:
    """Compose the job's overrides with verl's own Hydra configs: an unknown key or a bad value fails."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(verl_config_dir()), version_base=None):
            compose(config_name=job.config_name, overrides=list(job.overrides))
    except (HydraException, OmegaConfBaseException) as error:
        raise UsageError(f"verl rejected the rendered {job.config_name} config: {str(error).splitlines()[0]}") from error


def hf_checkpoint(output_dir: Path) -> Path:
    """The newest Hugging Face weights verl saved under ``output_dir``."""
    found = sorted(output_dir.glob("global_step_*/**/huggingface"),
                   key=lambda path: int(path.relative_to(output_dir).parts[0].removeprefix("global_step_")))
    if not found:
        raise RuntimeError(f"verl saved no Hugging Face checkpoint under {output_dir}")
    return found[-1]
