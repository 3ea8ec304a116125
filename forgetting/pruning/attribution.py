"""Attribution scores: how much the loss on the retained domain leans on each MLP neuron.

The score of neuron ``j`` is ``sum over tokens |a_j * dL/da_j|``, where ``a`` is the MLP's
intermediate activation ``act(gate(x)) * up(x)`` (the input of ``down_proj``) and ``L`` is each
batch's mean causal-LM loss: the first-order estimate of how much the loss changes when the
neuron is zeroed at that token, taken in absolute value so that effects of opposite sign at
different tokens do not cancel.

``dL/da`` comes from ``torch.autograd.grad`` on the captured activations, so no parameter's
``.grad`` is touched. The graph must not be cut at ``a`` (``a`` of one layer reaches the loss
through the MLPs of later layers too), so when the parameters are frozen the embedding output is
made to require grad instead, which puts every activation in the graph.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from forgetting.errors import UsageError, check_choice
from forgetting.device import PRECISIONS, autocast
from forgetting.pruning.scores import NeuronScores, batches_on, mlp_modules


def check_options(*, precision: str = "fp32") -> None:
    check_choice("precision", precision, PRECISIONS)


def stage_options(config) -> dict:
    """The options the prune stage's ``config`` gives this criterion."""
    return {"precision": config.precision}


@contextlib.contextmanager
def _evaluation_mode(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _capturing_activations(model: nn.Module, mlps: list[nn.Module], captured: list[torch.Tensor | None]):
    """Record each ``down_proj`` input in ``captured``, inside the autograd graph."""
    def into_graph(module, args, output):
        return output if output.requires_grad else output.detach().requires_grad_(True)

    def capture(layer: int):
        def pre_hook(module, args):
            captured[layer] = args[0]
        return pre_hook

    handles = [model.get_input_embeddings().register_forward_hook(into_graph)]
    handles += [mlp.down_proj.register_forward_pre_hook(capture(layer)) for layer, mlp in enumerate(mlps)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def score_neurons(model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor]], *, seed: int = 0,
                  precision: str = "fp32") -> NeuronScores:
    """Sum of ``|activation x gradient|`` per neuron over every token of ``batches``.

    ``batches`` are causal-LM batches (``input_ids``, ``attention_mask``, ``labels``); padded
    positions add nothing because the loss does not depend on them. ``seed`` is accepted for a
    uniform signature; the scores are deterministic.
    """
    check_options(precision=precision)
    mlps = mlp_modules(model)
    device = model.device
    totals = [torch.zeros(mlp.down_proj.in_features, dtype=torch.float64, device=device) for mlp in mlps]
    captured: list[torch.Tensor | None] = [None] * len(mlps)
    token_count, batch_count, loss_sum = 0, 0, 0.0
    with _evaluation_mode(model), _capturing_activations(model, mlps, captured), torch.enable_grad():
        for batch in tqdm(batches_on(device, batches), desc="attribution", unit="batch", leave=False):
            with autocast(precision, device):
                loss = model(**batch).loss
            gradients = torch.autograd.grad(loss, captured)
            with torch.no_grad():  # in the graph, each total would keep every batch's activations alive
                for total, activation, gradient in zip(totals, captured, gradients):
                    total += (activation.double() * gradient.double()).abs().flatten(0, -2).sum(dim=0)
            loss_sum += loss.item()
            batch_count += 1
            token_count += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
    if batch_count == 0:
        raise UsageError("attribution scoring needs at least one batch")
    scores = [total.float() for total in totals]
    return NeuronScores(scores=scores, model=model,
                        metrics={"attribution_loss": loss_sum / batch_count, "attribution_tokens": float(token_count)})
