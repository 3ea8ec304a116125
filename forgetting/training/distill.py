"""Knowledge distillation of a sequence classifier (Hinton et al. 2015).

``loss = alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(teacher_T || student_T)``; the T^2
keeps the soft term's gradients on the scale of the hard term's as T grows. A student built
from the teacher starts from evenly spaced teacher layers, the DistilBERT initialisation.
"""
from __future__ import annotations

import copy
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from forgetting.errors import UsageError, check_range
from forgetting.device import autocast, on_device
from forgetting.training.distributed import average_gradients, own_share, process_mean, world_size
from forgetting.training.optimizer import adamw_with_warmup


def check_distillation(alpha: float, temperature: float) -> None:
    check_range("alpha", alpha, 0, 1)
    check_range("temperature", temperature, 0, low_open=True)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      alpha: float, temperature: float) -> torch.Tensor:
    hard = F.cross_entropy(student_logits.float(), labels)
    soft = F.kl_div(F.log_softmax(student_logits.float() / temperature, -1),
                    F.log_softmax(teacher_logits.detach().float() / temperature, -1),
                    log_target=True, reduction="batchmean")
    return alpha * hard + (1 - alpha) * temperature ** 2 * soft


def student_from_teacher(teacher: nn.Module, num_layers: int) -> nn.Module:
    """The teacher's architecture with ``num_layers`` evenly spaced teacher layers (first and last
    included), embeddings, final norm and head copied, on the teacher's device and in its dtype; the
    teacher is not modified."""
    total = teacher.config.num_hidden_layers
    if not 1 <= num_layers < total:
        raise UsageError(f"student_layers={num_layers} must be in [1, {total})")
    chosen = torch.linspace(0, total - 1, num_layers).round().long().tolist()
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = num_layers
    for name in ("intermediate_sizes", "layer_types"):
        if isinstance(getattr(config, name, None), list):
            setattr(config, name, [getattr(teacher.config, name)[i] for i in chosen])
    reference = next(teacher.parameters())
    with torch.device(reference.device):  # built where it will live
        student = type(teacher)(config)
    state = {key: value for key, value in teacher.state_dict().items() if ".layers." not in key}
    for position, layer in enumerate(chosen):
        prefix = f"model.layers.{layer}."
        state |= {f"model.layers.{position}.{key[len(prefix):]}": value
                  for key, value in teacher.state_dict().items() if key.startswith(prefix)}
    student.load_state_dict(state, strict=True)
    return student.to(reference.dtype).train(teacher.training)


def _logits(model: nn.Module, batch: dict, precision: str, grad: bool) -> torch.Tensor:
    """``model``'s logits for ``batch``, whose inputs are moved to the model's device."""
    inputs = on_device({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}, model.device)
    with torch.set_grad_enabled(grad), autocast(precision, model.device):
        return model(**inputs).logits


def distill(student: nn.Module, teacher: nn.Module, batches: Callable[[], Iterable[dict]], *, steps: int,
            lr: float, alpha: float, temperature: float, precision: str = "fp32", warmup_fraction: float = 0.1,
            on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``student`` in place for ``steps`` optimizer steps; ``batches()`` gives one pass over
    the data (called again when a pass ends). Under torchrun each process takes every N-th row of
    each batch and the gradients are averaged over the processes. Returns the loss of every step."""
    check_distillation(alpha, temperature)
    optimizer, scheduler = adamw_with_warmup(student, lr, steps, warmup_fraction)
    teacher.eval()
    student.train()
    losses: list[float] = []
    with tqdm(total=steps, desc="distill", unit="step", leave=False) as progress:
        while len(losses) < steps:
            for batch in batches():
                if len(batch["labels"]) < world_size():
                    continue  # too few rows to give every data-parallel process one
                batch = own_share(batch)
                teacher_logits = _logits(teacher, batch, precision, grad=False)
                student_logits = _logits(student, batch, precision, grad=True)
                loss = distillation_loss(student_logits, teacher_logits.to(student.device),
                                         batch["labels"].to(student.device), alpha, temperature)
                loss.backward()
                average_gradients(student)
                torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(process_mean(loss).item())
                if on_step:
                    on_step(len(losses), losses[-1])
                progress.update()
                if len(losses) == steps:
                    break
    student.eval()
    return losses
