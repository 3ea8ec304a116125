"""Greedy Coordinate Gradient (Zou et al., 2023): an adversarial suffix found by token gradients.

Each step takes the gradient of the target loss with respect to the one-hot suffix tokens, draws
``batch`` candidates that each swap one position for one of that position's ``top_k`` most
promising tokens, scores every candidate with one batched forward pass and keeps the best. With
several behaviours the loss is their mean (the universal suffix); given one behaviour, the search
finds that behaviour's own suffix. Candidates whose text does not re-tokenise to the same ids are dropped (a step
where none does keeps the current suffix), so the suffix found is a string that can be pasted anywhere (and
transferred to another checkpoint).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from forgetting.attacks.prompts import CONTROL_MARK, Behaviour, chat_around, encode, target_losses


@dataclass(frozen=True)
class GCGConfig:
    steps: int = 20
    suffix_length: int = 20
    top_k: int = 256
    batch: int = 64
    seed: int = 0


def search_config(config) -> GCGConfig:
    """The search an ``EvaluateConfig`` asks for: its GCG budgets and seed."""
    return GCGConfig(config.steps, config.suffix_length, config.top_k, config.attack_batch, config.seed)


@dataclass
class Layout:
    """``[before][suffix][after][target]`` token ids of one behaviour."""
    before: torch.Tensor
    after: torch.Tensor
    target: torch.Tensor

    def rows(self, suffixes: torch.Tensor) -> torch.Tensor:
        n = len(suffixes)
        return torch.cat([self.before.expand(n, -1), suffixes, self.after.expand(n, -1),
                          self.target.expand(n, -1)], dim=1)


@dataclass
class GCGResult:
    suffix_ids: list[int]
    losses: list[float] = field(default_factory=list)


def layout(tokenizer, behaviour: Behaviour) -> Layout:
    before, after = chat_around(tokenizer, f"{behaviour.request} {CONTROL_MARK}")
    return Layout(encode(tokenizer, before), encode(tokenizer, after), encode(tokenizer, behaviour.target))


def allowed_tokens(tokenizer) -> torch.Tensor:
    """Printable ASCII tokens that are not special: the vocabulary a pasted suffix can use."""
    special = set(tokenizer.all_special_ids)
    allowed = torch.zeros(len(tokenizer), dtype=torch.bool)
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        allowed[token_id] = token_id not in special and text.isascii() and text.isprintable() and text.strip() != ""
    return allowed


def initial_suffix(tokenizer, length: int) -> torch.Tensor:
    """``! ! ! ...``, the paper's starting suffix."""
    return encode(tokenizer, " ".join(["!"] * length))[:length]


def token_gradients(model, layouts: list[Layout], suffix: torch.Tensor) -> torch.Tensor:
    """d(mean target loss)/d(one-hot suffix): ``[suffix_length, vocab]``, computed on the embedding
    matrix's device and returned on the CPU, where candidates are drawn with a seeded CPU generator
    (so a seed draws the same candidates on any device)."""
    embeddings = model.get_input_embeddings().weight
    device = embeddings.device
    one_hot = torch.nn.functional.one_hot(suffix.to(device), embeddings.shape[0]).to(embeddings.dtype)
    one_hot.requires_grad_()
    suffix_embeds = one_hot @ embeddings
    total = 0.0
    for item in layouts:
        before, after, target = item.before.to(device), item.after.to(device), item.target.to(device)
        embeds = torch.cat([embeddings[before], suffix_embeds, embeddings[after], embeddings[target]])[None]
        n = len(target)
        logits = model(inputs_embeds=embeds, logits_to_keep=n + 1).logits[0, :-1]
        total = total + torch.nn.functional.cross_entropy(logits.float(), target)
    (total / len(layouts)).backward()
    return one_hot.grad.cpu()


def sample_candidates(suffix: torch.Tensor, gradient: torch.Tensor, allowed: torch.Tensor, top_k: int, batch: int,
                      generator: torch.Generator) -> torch.Tensor:
    """``batch`` copies of the suffix, each with one position swapped for a top-k gradient token."""
    scores = (-gradient).masked_fill(~allowed, float("-inf"))
    top = scores.topk(top_k, dim=1).indices
    positions = torch.randint(len(suffix), (batch,), generator=generator)
    picks = top[positions, torch.randint(top_k, (batch,), generator=generator)]
    candidates = suffix.repeat(batch, 1)
    candidates[torch.arange(batch), positions] = picks
    return candidates


def round_trips(tokenizer, candidates: torch.Tensor) -> torch.Tensor:
    texts = tokenizer.batch_decode(candidates)
    return torch.tensor([encode(tokenizer, text).tolist() == ids.tolist() for text, ids in zip(texts, candidates)])


def gcg(model, tokenizer, behaviours: list[Behaviour], config: GCGConfig, allowed: torch.Tensor | None = None,
        progress: str = "gcg") -> GCGResult:
    """One suffix for all ``behaviours`` (pass one behaviour for the per-behaviour variant)."""
    generator = torch.Generator().manual_seed(config.seed)
    layouts = [layout(tokenizer, b) for b in behaviours]
    allowed = allowed_tokens(tokenizer) if allowed is None else allowed
    suffix = initial_suffix(tokenizer, config.suffix_length)
    best = GCGResult(suffix.tolist())
    best_loss = float("inf")
    for _ in tqdm(range(config.steps), desc=progress, unit="step", leave=False):
        gradient = token_gradients(model, layouts, suffix)
        model.zero_grad(set_to_none=True)
        candidates = sample_candidates(suffix, gradient, allowed, config.top_k, config.batch, generator)
        kept = round_trips(tokenizer, candidates)
        candidates = candidates[kept] if kept.any() else suffix.unsqueeze(0)  # none pastes: keep the suffix
        with torch.no_grad():
            losses = torch.stack([target_losses(model, item.rows(candidates), len(item.target))
                                  for item in layouts]).mean(0)
        choice = int(losses.argmin())
        suffix, loss = candidates[choice], float(losses[choice])
        best.losses.append(loss)
        if loss < best_loss:
            best_loss, best.suffix_ids = loss, suffix.tolist()
    return best
