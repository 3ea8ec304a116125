"""TunePrune scores: train with a group-lasso penalty on neurons, then score by neuron norm.

A copy of the model is trained for ``steps`` steps of proximal AdamW on the causal-LM loss plus
``l1_lambda * sum over neurons of ||w_j||``, where ``w_j`` is neuron ``j``'s weight group (its
``gate_proj`` and ``up_proj`` rows and its ``down_proj`` column, plus their biases if any): each step is
an AdamW step (``lr``, no weight decay) on the LM loss, then the proximal map of the penalty in AdamW's
own metric, a group soft-threshold ``w_j <- w_j * max(0, 1 - penalty_lr * l1_lambda / (d_j * ||w_j||))``
with ``d_j`` the mean of AdamW's denominator ``sqrt(v_hat) + eps`` over the group's weights (ProxGen's
proximal step under a diagonal preconditioner, with the preconditioner averaged per group: Yun, Lozano
and Yang, NeurIPS 2021). The penalty is an L1 norm over groups, so it drives whole neurons to zero while
the loss pulls back the ones the data needs. The score is the tuned group norm; the model to prune is
the tuned copy (``NeuronScores.model``), never the model passed in.

Why the metric matters: with the penalty inside the loss, as the seed trains it, AdamW divides each
weight's penalty gradient by that weight's ``sqrt(v_hat)``, so a neuron whose weights the LM loss barely
moves (small ``v``) shrinks fastest. A Euclidean soft-threshold shrinks every group by the same amount,
so the tuned norms keep the initial order, and in SmolLM2-135M the small-norm neurons matter *more* than
random ones (pruning 30% by the untuned norm: held-out Python loss 13.5 against 8.3 for random).

Why a proximal step with its own step size (``penalty_lr``, in AdamW's metric; ProxGen uses ``lr``):
inside the loss the penalty moves norms by at most about ``lr`` per weight per step, so a budget of a few
steps cannot reorder them, and raising ``lr`` instead makes the LM part overfit a small calibration set.
README has the measured budgets.

``l1_lambda`` by sparsity (``lambda_for``): 3e-4, 5e-4, 1e-3 at 30, 63, 80% removed, the values
the study's seed used; between those points it is interpolated linearly in log(lambda), outside
them it is the nearest end's value.
"""
from __future__ import annotations

import copy
import itertools
import math
from typing import Iterable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from forgetting.errors import UsageError, check_choice, check_range
from forgetting.device import PRECISIONS, autocast
from forgetting.models.weights import check_llama
from forgetting.pruning.scores import NeuronScores, batches_on, mlp_modules
from forgetting.training.optimizer import adamw

LAMBDA_BY_SPARSITY = ((0.3, 3e-4), (0.63, 5e-4), (0.8, 1e-3))
BY_SPARSITY = -1.0  # ``l1_lambda`` value meaning "from the sparsity" (``lambda_for``)
DEFAULT_L1_LAMBDA = LAMBDA_BY_SPARSITY[0][1]
DEFAULT_STEPS = 100
DEFAULT_LR = 1e-4
DEFAULT_PENALTY_LR = 0.01
ZEROED = 0.01  # a group counts as zeroed once its norm is below this fraction of its norm before tuning


def lambda_for(sparsity: float) -> float:
    """The seed's ``l1_lambda`` for ``sparsity``: log-linear between its points, clamped outside."""
    points = LAMBDA_BY_SPARSITY
    exact = dict(points).get(sparsity)
    if exact is not None:
        return exact
    if sparsity <= points[0][0]:
        return points[0][1]
    for (s0, l0), (s1, l1) in zip(points, points[1:]):
        if sparsity <= s1:
            t = (sparsity - s0) / (s1 - s0)
            return math.exp((1 - t) * math.log(l0) + t * math.log(l1))
    return points[-1][1]


def resolve_lambda(l1_lambda: float, sparsity: float) -> float:
    """``l1_lambda`` as given, or ``lambda_for(sparsity)`` when it is ``BY_SPARSITY`` (-1)."""
    if l1_lambda == BY_SPARSITY:
        return lambda_for(sparsity)
    if l1_lambda < 0:
        raise UsageError(f"l1_lambda={l1_lambda!r} is negative: give a value >= 0, or -1 for the "
                         "per-sparsity default (3e-4, 5e-4, 1e-3 at 0.3, 0.63, 0.8)")
    return l1_lambda


def check_options(*, l1_lambda: float = DEFAULT_L1_LAMBDA, steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR,
                  penalty_lr: float = DEFAULT_PENALTY_LR, precision: str = "fp32") -> None:
    check_range("l1_lambda", l1_lambda, 0)
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise UsageError(f"steps={steps!r} is not an integer")
    check_range("steps", steps, 1)
    check_range("lr", lr, 0, low_open=True)
    check_range("penalty_lr", penalty_lr, 0)
    check_choice("precision", precision, PRECISIONS)


def stage_options(config) -> dict:
    """The options the prune stage's ``config`` gives this criterion (λ from the sparsity unless given)."""
    return {"precision": config.precision, "l1_lambda": resolve_lambda(config.l1_lambda, config.sparsity),
            "steps": config.tuneprune_steps, "lr": config.tuneprune_lr, "penalty_lr": config.tuneprune_penalty_lr}


def neuron_group_norms(mlp: nn.Module) -> torch.Tensor:
    """``||w_j||_2`` over neuron ``j``'s gate row, up row and down column (and biases), per neuron."""
    squares = (mlp.gate_proj.weight.pow(2).sum(dim=1) + mlp.up_proj.weight.pow(2).sum(dim=1)
               + mlp.down_proj.weight.pow(2).sum(dim=0))
    if mlp.gate_proj.bias is not None:
        squares = squares + mlp.gate_proj.bias.pow(2) + mlp.up_proj.bias.pow(2)
    return squares.sqrt()


@torch.no_grad()
def group_soft_threshold(mlp: nn.Module, threshold: float | torch.Tensor) -> None:
    """The proximal map of ``sum_j threshold_j * ||w_j||``: shrink group ``j``'s norm by ``threshold_j`` (one
    value for every group, or one per neuron), floor 0."""
    norms = neuron_group_norms(mlp)
    factor = (1 - threshold / norms.clamp_min(torch.finfo(norms.dtype).tiny)).clamp_min(0)
    mlp.gate_proj.weight.mul_(factor[:, None].to(mlp.gate_proj.weight.dtype))
    mlp.up_proj.weight.mul_(factor[:, None].to(mlp.up_proj.weight.dtype))
    mlp.down_proj.weight.mul_(factor[None, :].to(mlp.down_proj.weight.dtype))
    if mlp.gate_proj.bias is not None:
        mlp.gate_proj.bias.mul_(factor.to(mlp.gate_proj.bias.dtype))
        mlp.up_proj.bias.mul_(factor.to(mlp.up_proj.bias.dtype))


@torch.no_grad()
def adamw_metric(mlp: nn.Module, optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """Per neuron, the mean over its weight group of AdamW's denominator ``sqrt(v / (1 - beta2^t)) + eps``."""
    def denominator(parameter: torch.Tensor) -> torch.Tensor:
        state, group = optimizer.state[parameter], optimizer.param_groups[0]
        beta2 = group["betas"][1]
        return (state["exp_avg_sq"].float() / (1 - beta2 ** float(state["step"]))).sqrt() + group["eps"]

    total = (denominator(mlp.gate_proj.weight).sum(dim=1) + denominator(mlp.up_proj.weight).sum(dim=1)
             + denominator(mlp.down_proj.weight).sum(dim=0))
    count = mlp.gate_proj.in_features + mlp.up_proj.in_features + mlp.down_proj.out_features
    if mlp.gate_proj.bias is not None:
        total, count = total + denominator(mlp.gate_proj.bias) + denominator(mlp.up_proj.bias), count + 2
    return total / count


def shrinkage(before: torch.Tensor, after: torch.Tensor) -> dict[str, float]:
    """How far the group norms moved: mean relative decrease, and the fraction (nearly) zeroed."""
    return {"tuneprune_norm_shrink": ((before - after) / before.clamp_min(1e-12)).mean().item(),
            "tuneprune_zeroed_fraction": (after < ZEROED * before).float().mean().item()}


def log_step(metrics: dict[str, float], step: int) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_metrics(metrics, step=step)


def score_neurons(model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor]], *, seed: int = 0,
                  l1_lambda: float = DEFAULT_L1_LAMBDA, steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR,
                  penalty_lr: float = DEFAULT_PENALTY_LR, precision: str = "fp32") -> NeuronScores:
    """Tune a copy by proximal group lasso; score = the copy's neuron group norms.

    ``batches`` is cycled when it has fewer than ``steps`` batches (it is iterated once and
    the batches kept). ``seed`` seeds the random state used during tuning (dropout, if any) on the
    CPU and on the model's GPU. Each step's LM loss, penalty (``l1_lambda * sum_j ||w_j||``), mean
    relative shrinkage of the group norms and zeroed fraction are logged to the active MLflow run, if any.
    """
    check_options(l1_lambda=l1_lambda, steps=steps, lr=lr, penalty_lr=penalty_lr, precision=precision)
    check_llama(model)
    tuned = copy.deepcopy(model)
    tuned.train()
    for parameter in tuned.parameters():
        parameter.requires_grad_(True)
    mlps = mlp_modules(tuned)
    device = tuned.device
    optimizer = adamw(tuned.parameters(), lr=lr, weight_decay=0.0)
    stream = itertools.cycle(batches_on(device, batches))
    with torch.no_grad():
        initial = torch.cat([neuron_group_norms(mlp).float() for mlp in mlps])
    metrics: dict[str, float] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for step in tqdm(range(steps), desc="tuneprune", unit="step", leave=False):
            batch = next(stream, None)
            if batch is None:
                raise UsageError("tuneprune scoring needs at least one batch")
            with autocast(precision, device):
                lm_loss = tuned(**batch).loss
            lm_loss.float().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            for mlp in mlps:
                group_soft_threshold(mlp, penalty_lr * l1_lambda / adamw_metric(mlp, optimizer))
            with torch.no_grad():
                norms = torch.cat([neuron_group_norms(mlp).float() for mlp in mlps])
            metrics = {"tuneprune_lm_loss": lm_loss.item(), "tuneprune_penalty": l1_lambda * norms.sum().item(),
                       **shrinkage(initial, norms)}
            log_step(metrics, step + 1)
    tuned.eval()
    with torch.no_grad():
        scores = [neuron_group_norms(mlp).float() for mlp in mlps]
    return NeuronScores(scores=scores, model=tuned, metrics={**metrics, "tuneprune_l1_lambda": l1_lambda})
