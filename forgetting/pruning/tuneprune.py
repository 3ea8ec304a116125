"""TunePrune scores: train with a group-lasso penalty on neurons, then score by neuron norm.

A copy of the model is trained for ``steps`` steps of proximal gradient descent on the causal-LM
loss plus ``l1_lambda * sum over neurons of ||w_j||``, where ``w_j`` is neuron ``j``'s weight group
(its ``gate_proj`` and ``up_proj`` rows and its ``down_proj`` column, plus their biases if any):
each step is an AdamW step (``lr``, no weight decay) on the LM loss, then the proximal map of the
penalty, a group soft-threshold ``w_j <- w_j * max(0, 1 - penalty_lr * l1_lambda / ||w_j||)``. The
penalty is an L1 norm over groups, so it drives whole neurons to zero while the loss pulls back
the ones the data needs. The score is the tuned group norm; the model to prune is the tuned copy
(``NeuronScores.model``), never the model passed in.

Why a proximal step with its own, larger learning rate (``penalty_lr``): with the penalty in the
loss, AdamW's per-weight normalisation moves every weight by about ``lr`` per step whatever
``l1_lambda`` is, so ``lr * steps`` bounds how far norms shrink (SmolLM2-135M, group norms ~8:
``lr=1e-4``, 8 steps moved them < 0.1%), and raising ``lr`` instead makes the LM part overfit a
small calibration set. The soft-threshold shrinks every group by exactly ``penalty_lr * l1_lambda``
per step, independent of ``lr``; the LM loss decides which groups grow back.

What few steps cannot do (SmolLM2-135M, 8 calibration blocks of 128 tokens, bf16 autocast, per-layer
pruning at 30%): before tuning, the smallest-norm neurons matter *more* than random ones (pruning by
the initial norm: held-out loss 13.5 vs 8.3 for random), and the norms are tightly spread (10th-90th
percentile 7.2-8.8), so the pruned set only improves on random once the LM gradient has pulled the
needed groups back by more than that spread. With 8 blocks the LM part overfits first (20 steps at
``lr=1e-4``: held-out loss before pruning 2.93 -> 4.03; at 1e-3: -> 8.1). With 400 fresh blocks,
100 steps at ``lr=1e-3`` and ``penalty_lr=67`` beat random at 63% and 80% removed (11.1 vs 13.2,
8.4 vs 15.6) but not at 30% (10.6 vs 8.3). README has the numbers.

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
from forgetting.pruning.scores import NeuronScores, batches_on, check_llama, mlp_modules

LAMBDA_BY_SPARSITY = ((0.3, 3e-4), (0.63, 5e-4), (0.8, 1e-3))
BY_SPARSITY = -1.0  # ``l1_lambda`` value meaning "from the sparsity" (``lambda_for``)
DEFAULT_L1_LAMBDA = LAMBDA_BY_SPARSITY[0][1]
DEFAULT_STEPS = 100
DEFAULT_LR = 1e-4
DEFAULT_PENALTY_LR = 30.0
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


def neuron_group_norms(mlp: nn.Module) -> torch.Tensor:
    """``||w_j||_2`` over neuron ``j``'s gate row, up row and down column (and biases), per neuron."""
    squares = (mlp.gate_proj.weight.pow(2).sum(dim=1) + mlp.up_proj.weight.pow(2).sum(dim=1)
               + mlp.down_proj.weight.pow(2).sum(dim=0))
    if mlp.gate_proj.bias is not None:
        squares = squares + mlp.gate_proj.bias.pow(2) + mlp.up_proj.bias.pow(2)
    return squares.sqrt()


@torch.no_grad()
def group_soft_threshold(mlp: nn.Module, threshold: float) -> None:
    """The proximal map of ``threshold * sum_j ||w_j||``: shrink each group's norm by ``threshold``, floor 0."""
    norms = neuron_group_norms(mlp)
    factor = (1 - threshold / norms.clamp_min(torch.finfo(norms.dtype).tiny)).clamp_min(0)
    mlp.gate_proj.weight.mul_(factor[:, None].to(mlp.gate_proj.weight.dtype))
    mlp.up_proj.weight.mul_(factor[:, None].to(mlp.up_proj.weight.dtype))
    mlp.down_proj.weight.mul_(factor[None, :].to(mlp.down_proj.weight.dtype))
    if mlp.gate_proj.bias is not None:
        mlp.gate_proj.bias.mul_(factor.to(mlp.gate_proj.bias.dtype))
        mlp.up_proj.bias.mul_(factor.to(mlp.up_proj.bias.dtype))


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
    optimizer = torch.optim.AdamW(tuned.parameters(), lr=lr, weight_decay=0.0)
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
                group_soft_threshold(mlp, penalty_lr * l1_lambda)
            with torch.no_grad():
                norms = torch.cat([neuron_group_norms(mlp).float() for mlp in mlps])
            metrics = {"tuneprune_lm_loss": lm_loss.item(), "tuneprune_penalty": l1_lambda * norms.sum().item(),
                       **shrinkage(initial, norms)}
            log_step(metrics, step + 1)
    tuned.eval()
    with torch.no_grad():
        scores = [neuron_group_norms(mlp).float() for mlp in mlps]
    return NeuronScores(scores=scores, model=tuned, metrics={**metrics, "tuneprune_l1_lambda": l1_lambda})
