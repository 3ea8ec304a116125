"""The methods that TRL's trainers implement: SFT (ground truth, same- or cross-family teacher data),
DPO on collected pairs (offline RL), SPIN rounds of DPO against the model's own samples (self),
and GRPO with the domain's verifiable reward (online RL).

Every trainer logs through ``MlflowMetrics`` into the stage run (TRL's own MLflow reporting would log
every TrainingArguments field as a parameter of the stage run) and checkpoints into ``work_dir``,
so a killed stage resumes from its last checkpoint. Trainers run on the device policy's device and
precision; under ``torchrun`` they run DDP themselves, and only rank 0 logs to MLflow.
"""
from __future__ import annotations

import copy
from pathlib import Path

import mlflow
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from forgetting.training.distributed import is_main, world_size


class MlflowMetrics(TrainerCallback):
    """Every numeric value the trainer logs goes to the active MLflow run (``prefix`` + name) at the
    trainer's global step plus ``offset``, from rank 0 only; every rank keeps the history in
    ``self.history`` for the objective."""

    def __init__(self, prefix: str = "", offset: int = 0):
        self.prefix, self.offset, self.history = prefix, offset, []

    def on_log(self, args, state, control, logs=None, **kwargs):
        numeric = {f"{self.prefix}{k}": float(v) for k, v in (logs or {}).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.history.append(numeric)
        if is_main():
            mlflow.log_metrics(numeric, step=state.global_step + self.offset)


def training_arguments(config_class, config, work_dir: Path, steps: int, **extra):
    """TRL arguments on the device policy's device; ``bf16`` (autocast over fp32 weights, on a CPU
    too) when ``config.precision`` resolves to bf16-autocast there. Under torchrun each process takes
    an equal share of ``config.batch_size``, so the global batch is the same on any number of GPUs."""
    from forgetting.device import current, resolve_precision

    device = current().device
    args = config_class(
        output_dir=str(work_dir), max_steps=steps, learning_rate=config.lr, per_device_train_batch_size=config.batch_size // world_size(),
        gradient_accumulation_steps=1, warmup_steps=max(1, steps // 10), logging_steps=1, save_steps=config.checkpoint_every,
        save_total_limit=1, report_to="none", use_cpu=device.type == "cpu", seed=config.seed,
        bf16=resolve_precision(config.precision, device) == "bf16-autocast", dataloader_num_workers=0,
        disable_tqdm=False, **extra)
    return on_policy_gpu(args, device)


def on_policy_gpu(args, device):
    """``args`` pinned to the policy's one GPU. Outside ``torchrun`` transformers picks ``cuda:0`` (and
    calls ``set_device`` on it) and wraps the model in DataParallel over every visible GPU; its device
    is a cached property, so the policy's device (``cuda:N``) replaces it. Under ``torchrun`` each
    process already has its own GPU (``LOCAL_RANK``, which the policy also picks)."""
    import torch
    from transformers.training_args import ParallelMode

    if device.type != "cuda" or args.parallel_mode == ParallelMode.DISTRIBUTED:
        return args
    args.__dict__["_setup_devices"] = device
    args._n_gpu = 1
    torch.cuda.set_device(device)
    return args


def train(trainer, work_dir: Path, callback: MlflowMetrics, objective: str, higher_is_better: bool = False) -> dict:
    """Train (resuming from the last checkpoint in ``work_dir``) and summarise ``objective`` as the mean
    of its first and last quarter of logged values."""
    trainer.add_callback(callback)
    trainer.train(resume_from_checkpoint=get_last_checkpoint(str(work_dir)) if work_dir.is_dir() else None)
    return objective_summary([logs[objective] for logs in callback.history if objective in logs], objective,
                             higher_is_better)


def objective_summary(values: list[float], objective: str, higher_is_better: bool = False) -> dict:
    if not values:
        raise RuntimeError(f"the trainer logged no {objective!r}")
    window = max(1, len(values) // 4)
    return {"objective_start": sum(values[:window]) / window, "objective_end": sum(values[-window:]) / window,
            "objective_higher_is_better": float(higher_is_better), "objective_steps": len(values)}


def frozen_copy(model):
    """The DPO reference: TRL would reload it from ``config.name_or_path``, which an in-memory model
    (a previous SPIN round) does not have."""
    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    return reference


def dataset(rows: list[dict]):
    from datasets import Dataset

    return Dataset.from_list(rows)


def supervised(model, tokenizer, data, config, work_dir: Path) -> dict:
    """SFT on prompt-completion pairs: the references (gt-sft) or a teacher's correct responses."""
    from trl import SFTConfig, SFTTrainer

    pairs = data.ground_truth() if data.collected is None else data.collected
    args = training_arguments(SFTConfig, config, work_dir, config.steps, max_length=config.max_length,
                              completion_only_loss=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset(pairs), processing_class=tokenizer)
    return train(trainer, work_dir, MlflowMetrics(), "loss") | {"objective": "sft_loss", "n_examples": len(pairs)}


def offline_rl(model, tokenizer, data, config, work_dir: Path) -> dict:
    """DPO on (correct, incorrect) response pairs collected from the policy."""
    from trl import DPOConfig, DPOTrainer

    args = training_arguments(DPOConfig, config, work_dir, config.steps, beta=config.beta, max_length=config.max_length)
    trainer = DPOTrainer(model=model, ref_model=frozen_copy(model), args=args, train_dataset=dataset(data.collected),
                         processing_class=tokenizer)
    return train(trainer, work_dir, MlflowMetrics(), "loss") | {"objective": "dpo_loss",
                                                                  "n_examples": len(data.collected)}


def self_play(model, tokenizer, data, config, work_dir: Path) -> dict:
    """SPIN: each round the model answers the prompts itself (greedy) and DPO prefers the reference over
    its own answer, against the previous round's weights as the reference model."""
    from trl import DPOConfig, DPOTrainer

    from forgetting.scoring.generation import generate

    steps = max(1, config.steps // config.rounds)
    losses = []
    for round_index in range(config.rounds):
        round_dir = work_dir / f"round-{round_index}"
        model.eval()  # the previous round's trainer left it training, on the policy's device
        responses, _ = generate(model, tokenizer, [row["prompt"] for row in data.rows], config.max_new_tokens,
                                config.batch_size, data.domain.stop_strings, config.precision)
        pairs = [{"prompt": row["prompt"], "chosen": data.domain.reference(row), "rejected": response}
                 for row, response in zip(data.rows, responses) if response.strip() != data.domain.reference(row).strip()]
        if not pairs:
            break
        args = training_arguments(DPOConfig, config, round_dir, steps, beta=config.beta, max_length=config.max_length)
        callback = MlflowMetrics(offset=round_index * steps)
        trainer = DPOTrainer(model=model, ref_model=frozen_copy(model), args=args,
                             train_dataset=dataset(pairs), processing_class=tokenizer)
        train(trainer, round_dir, callback, "loss")
        losses += [logs["loss"] for logs in callback.history if "loss" in logs]
    return objective_summary(losses, "loss") | {"objective": "spin_loss", "rounds": config.rounds}


def online_rl(model, tokenizer, data, config, work_dir: Path) -> dict:
    """GRPO: ``num_generations`` samples per prompt, scored by the domain's verifiable reward."""
    from trl import GRPOConfig, GRPOTrainer

    from forgetting.scoring.generation import cut_at_stop
    from forgetting.rewards import REWARDS

    score = REWARDS.get(data.domain.reward)

    def verifiable_reward(prompts, completions, **kwargs):
        rows = [{"prompt": prompt, **{c: kwargs[c][i] for c in score.columns if c in kwargs}}
                for i, prompt in enumerate(prompts)]
        return score([cut_at_stop(c, data.domain.stop_strings) for c in completions], rows)

    verifiable_reward.__name__ = f"{data.domain.reward}_reward"
    args = training_arguments(GRPOConfig, config, work_dir, config.steps, num_generations=config.num_generations,
                              max_completion_length=config.max_new_tokens, beta=config.kl_coef,
                              temperature=1.0, log_completions=False)
    trainer = GRPOTrainer(model=model, reward_funcs=verifiable_reward, args=args,
                          train_dataset=dataset(data.prompts()), processing_class=tokenizer)
    return train(trainer, work_dir, MlflowMetrics(), "reward", higher_is_better=True) | {"objective": "reward"}
