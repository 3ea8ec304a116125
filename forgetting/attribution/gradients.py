"""Batched per-example gradients with ``torch.func``, dotted with the test-set gradient.

TracIn needs ``<grad l(z_i), grad L_test>`` for every training example ``z_i``. ``vmap(grad(...))``
computes a batch of per-example gradients in one vectorised backward instead of one backward per
example (``benchmarks/bench_attribution.py`` measures the difference). Examples are right-padded and
padding is never labelled, so a causal model needs no attention mask here (and ``vmap`` avoids the
data-dependent mask checks inside transformers).
"""
from __future__ import annotations

import torch
from torch.func import functional_call, grad, vmap

from forgetting.attribution.examples import Encoded, token_losses
from forgetting.device import on_device


def selected_parameters(model, contains: str = "") -> dict[str, torch.Tensor]:
    return {name: p.detach() for name, p in model.named_parameters() if contains in name}


def test_gradient(model, test: Encoded, params: dict[str, torch.Tensor], batch_size: int) -> dict[str, torch.Tensor]:
    """Gradient of the mean test loss with respect to ``params``."""
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    for batch in test.batches(batch_size, model.device):
        def batch_loss(selected):
            logits = functional_call(model, selected, (batch["input_ids"],)).logits
            return token_losses(logits, batch["labels"]).sum() / len(test)
        for name, value in grad(batch_loss)(params).items():
            total[name] += value
    return total


def per_example_dot(model, train: Encoded, test: Encoded, batch_size: int, contains: str = "") -> torch.Tensor:
    """``<grad l(train_i), grad L_test>`` for every training example, shape ``(n,)``, on the model's device
    (the parameters, the model's own buffers and every batch are there)."""
    model.eval()
    params = selected_parameters(model, contains)
    target = test_gradient(model, test, params, batch_size)

    def example_loss(selected, input_ids, labels):
        logits = functional_call(model, selected, (input_ids[None],)).logits
        return token_losses(logits, labels[None])[0]

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))
    dots = []
    for batch in train.batches(batch_size, model.device):
        grads = per_example(params, batch["input_ids"], batch["labels"])
        dots.append(sum((g.flatten(1) * target[name].flatten()).sum(-1) for name, g in grads.items()))
    return torch.cat(dots)


def naive_dot(model, train: Encoded, test: Encoded, batch_size: int, contains: str = "") -> torch.Tensor:
    """The same numbers from one ordinary backward per training example (the benchmark's baseline)."""
    params = selected_parameters(model, contains)
    target = test_gradient(model, test, params, batch_size)
    names = set(params)
    dots = []
    for index in range(len(train)):
        model.zero_grad(set_to_none=True)
        batch = on_device(train.batch(slice(index, index + 1)), model.device)
        token_losses(model(input_ids=batch["input_ids"]).logits, batch["labels"])[0].backward()
        dots.append(sum((p.grad * target[n]).sum() for n, p in model.named_parameters() if n in names))
    model.zero_grad(set_to_none=True)
    return torch.stack(dots).detach()
