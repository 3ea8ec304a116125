"""The ``distill`` stage: a smaller student learns a fine-tuned classifier (teacher) on its task.

The student is ``layers:N`` (N evenly spaced teacher layers, copied: built from the teacher's
config) or any smaller classifier spec, such as a neuron-pruned copy from the prune stage. The
loss is ``alpha * CE(labels) + (1 - alpha) * T^2 * KL(teacher_T || student_T)``. Accuracy of
teacher and student is logged before and after; the student is registered with alias ``student``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import mlflow

from forgetting.device import DEVICE_HELP, GPUS_HELP, PRECISIONS
from forgetting.errors import UsageError, check_choice, check_range
from forgetting.training.distributed import check_batch

STUDENT_LAYERS = re.compile(r"^layers:(\d+)$")


@dataclass(frozen=True)
class DistillConfig:
    teacher: str = field(default="", metadata={"help": "a fine-tuned classifier spec (models:/name@finetuned)"})
    student: str = field(default="layers:15", metadata={
        "help": "layers:N (N of the teacher's layers) or a smaller classifier spec (e.g. a pruned one)"})
    task: str = field(default="sst2", metadata={"help": "classification task"})
    alpha: float = field(default=0.5, metadata={"help": "weight of the label cross-entropy, in [0, 1]"})
    temperature: float = field(default=2.0, metadata={"help": "softmax temperature T > 0"})
    steps: int = field(default=150, metadata={"help": "optimizer steps"})
    lr: float = field(default=2e-4, metadata={"help": "learning rate"})
    batch_size: int = field(default=16, metadata={"help": "sentences per step"})
    train_limit: int = field(default=0, metadata={"help": "train rows (0 = the whole train split)"})
    eval_limit: int = field(default=0, metadata={"help": "eval rows (0 = the whole eval split)"})
    precision: str = field(default="bf16-autocast", metadata={"help": ", ".join(PRECISIONS)})
    device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    gpus: int = field(default=1, metadata={"help": GPUS_HELP})
    seed: int = field(default=0, metadata={"help": "seed of row order"})
    register_as: str = field(default="", metadata={"help": "registered model name ('' = derived)"})

    @property
    def model(self) -> str:
        """The teacher: the model the stage's cache and lineage hang on."""
        return self.teacher

    def student_layers(self) -> int | None:
        match = STUDENT_LAYERS.match(self.student)
        return int(match[1]) if match else None

    def validate(self) -> None:
        from forgetting.data.classification import check_classification_task
        from forgetting.models import resolve_model
        from forgetting.models.classifier import is_classifier
        from forgetting.training.distill import check_distillation

        check_distillation(self.alpha, self.temperature)
        check_classification_task(self.task)
        for name in ("steps", "batch_size"):
            check_range(name, getattr(self, name), 1)
        for name in ("train_limit", "eval_limit"):
            check_range(name, getattr(self, name), 0)
        check_range("lr", self.lr, 0, low_open=True)
        check_choice("precision", self.precision, PRECISIONS)
        check_batch(self.batch_size, self.gpus)
        if not self.teacher:
            raise UsageError("teacher is empty; give a fine-tuned classifier, e.g. "
                             "models:/smollm2-135m-sst2-classifier@finetuned")
        teacher = resolve_model(self.teacher)
        if not is_classifier(teacher):
            raise UsageError(f"teacher={self.teacher!r} is not a sequence classifier; fine-tune one with "
                             "`finetune -P mode=classification`")
        teacher_layers = _config(teacher)["num_hidden_layers"]
        if (layers := self.student_layers()) is not None:
            if not 1 <= layers < teacher_layers:
                raise UsageError(f"student={self.student!r}: a student needs 1 to {teacher_layers - 1} layers "
                                 f"(the teacher has {teacher_layers})")
            return
        student = resolve_model(self.student)
        if not is_classifier(student):
            raise UsageError(f"student={self.student!r} is neither layers:N nor a sequence classifier")
        if (size := _parameter_count(student)) >= (teacher_size := _parameter_count(teacher)):
            raise UsageError(f"student={self.student!r} has {size:,} parameters, not fewer than the "
                             f"teacher's {teacher_size:,}")

    def model_name(self) -> str:
        from forgetting.tracking.checkpoints import registered_name

        kind = f"{self.student_layers()}l" if self.student_layers() else registered_name(self.student)
        return self.register_as or f"{registered_name(self.teacher)}-student-{kind}"


def _config(location: str) -> dict:
    return json.loads((Path(location) / "config.json").read_text())


def _parameter_count(location: str) -> int:
    """Parameters of a checkpoint, counted on the meta device (nothing is loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    import forgetting.models.variable_llama  # noqa: F401 - registers pruned (variable-size) Llamas
    from forgetting.models.weights import count_parameters

    with torch.device("meta"):
        return count_parameters(AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(location)))


def distill_student(config: DistillConfig) -> dict[str, float]:
    """Inside the active run: teacher and student accuracy, the distillation curve, the student registered;
    with ``gpus > 1`` the distillation runs data-parallel in that many torchrun processes."""
    from forgetting.tracking.runs import active_cache_key
    from forgetting.training.distributed import in_processes

    if config.gpus > 1:
        return in_processes("forgetting.training.distill_stage:distill_process", config, active_cache_key())
    return _distill(config, active_cache_key())


def distill_process(job: dict) -> None:
    """One torchrun process of a data-parallel ``distill``."""
    _distill(DistillConfig(**job["config"]), job["key"])


def _distill(config: DistillConfig, key: str) -> dict[str, float]:
    """Every process distils its share of each batch; rank 0 scores, logs and registers."""
    import torch

    from forgetting.data import log_dataset
    from forgetting.data.classification import CLASSIFICATION_LABELS, classification_batches, classification_rows
    from forgetting.scoring.classification import score_classifier
    from forgetting.models.classifier import load_classifier
    from forgetting.models.weights import count_parameters
    from forgetting.tracking.checkpoints import log_model
    from forgetting.training.distill import distill, student_from_teacher
    from forgetting.training.distributed import is_main

    labels = CLASSIFICATION_LABELS[config.task]
    train_rows = classification_rows(config.task, "train", config.seed, config.train_limit)
    eval_rows = classification_rows(config.task, "eval", config.seed, config.eval_limit)
    teacher, tokenizer = load_classifier(config.teacher, labels)
    layers = config.student_layers()
    student = student_from_teacher(teacher, layers) if layers else load_classifier(config.student, labels)[0]

    def evaluate(model, prefix: str) -> dict[str, float]:
        return score_classifier(model, tokenizer, eval_rows, config.batch_size, config.precision, prefix)

    metrics = {}
    if is_main():
        log_dataset(train_rows, config.task, "train", context="train")
        log_dataset(eval_rows, config.task, "eval")
        metrics = evaluate(teacher, "teacher") | evaluate(student, "student_before")
    generator = torch.Generator().manual_seed(config.seed)
    losses = distill(student, teacher,
                     lambda: classification_batches(tokenizer, train_rows, config.batch_size, generator),
                     steps=config.steps, lr=config.lr, alpha=config.alpha, temperature=config.temperature,
                     precision=config.precision,
                     on_step=lambda step, loss: is_main() and mlflow.log_metric("distill_loss", loss, step=step))
    if not is_main():
        return metrics
    metrics |= evaluate(student, "student") | {
        "teacher_parameters": count_parameters(teacher), "student_parameters": count_parameters(student),
        "distill_loss_first": losses[0], "distill_loss_last": losses[-1]}
    metrics["parameter_ratio"] = metrics["student_parameters"] / metrics["teacher_parameters"]
    mlflow.log_metrics(metrics)
    log_model(student, tokenizer, register_as=config.model_name(), alias="student", version_key=key,
              tags={"stage": "distill", "task": config.task, "method": "distill",
                    "sparsity": 1 - metrics["parameter_ratio"], "alpha": config.alpha,
                    "temperature": config.temperature, "step": config.steps})
    return metrics
