"""Linear knowledge probes: does a layer's hidden state tell a true fact from its counterfactual?

Each country fact gives two statements, ``prompt + true target + "."`` (label 1) and the same with
the counterfactual target (label 0). A logistic-regression probe per layer reads the hidden state at
the closing period (as in Marks & Tegmark's truth probes: the token is the same for every statement,
so its state carries the statement's content, not the identity of its last word), is fitted on some
countries and scored on held-out countries, so it cannot pass by remembering an entity.

Raw probe accuracy overstates what a representation encodes (a probe can memorise surface
features), so every layer also gets a control task in the sense of Hewitt & Liang (2019): each
target string gets a fixed random label, learnable only by memorising the string's identity.
``selectivity = accuracy - control_accuracy`` is the number to compare across checkpoints. The
probe is strongly regularised by default (``C=1e-3``): on SmolLM2-135M a looser probe (``C=0.1``)
learns the control task as well as the real one, a tighter one keeps the real task and loses the
control, which is the selective probe Hewitt & Liang recommend.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from forgetting.data.splits import unit
from forgetting.device import autocast, on_device


@dataclass(frozen=True)
class Statements:
    texts: list[str]
    labels: np.ndarray          # 1 true, 0 counterfactual
    control_labels: np.ndarray  # a seeded random bit per target string
    held_out: np.ndarray        # True where the fact's subject is a held-out entity


def fact_statements(facts: list[dict], seed: int = 0, held_out_fraction: float = 0.3) -> Statements:
    """Two statements per fact (``facts`` carry ``target_true`` and ``target_new``); held-out
    entities are drawn by subject, so both statements of a country land on the same side."""
    texts, labels, targets, held_out = [], [], [], []
    for fact in facts:
        outside = unit("probe entity", seed, fact["subject"]) < held_out_fraction
        for target, label in ((fact["target_true"], 1), (fact["target_new"], 0)):
            texts.append(f"{fact['prompt']}{target}.")
            labels.append(label)
            targets.append(target.strip())
            held_out.append(outside)
    control = [int(unit("probe control", seed, target) < 0.5) for target in targets]
    return Statements(texts, np.array(labels), np.array(control), np.array(held_out))


@torch.no_grad()
def last_token_states(model, tokenizer, texts: list[str], batch_size: int = 32,
                      precision: str = "fp32") -> np.ndarray:
    """Hidden states of each text's last token: ``[layers + 1, texts, hidden]`` (index 0 = embeddings),
    brought to the CPU for scikit-learn."""
    tokenizer.padding_side = "right"
    batches = []
    for start in tqdm(range(0, len(texts), batch_size), desc="hidden states", unit="batch", leave=False):
        inputs = on_device(tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                                     add_special_tokens=False), model.device)
        with autocast(precision, model.device):
            hidden = model(**inputs, output_hidden_states=True).hidden_states
        last = inputs["attention_mask"].sum(-1) - 1
        rows = torch.arange(len(last), device=last.device)
        batches.append(torch.stack([layer[rows, last].float() for layer in hidden]).cpu())
    return torch.cat(batches, dim=1).numpy()


def probe_accuracy(features: np.ndarray, labels: np.ndarray, held_out: np.ndarray, c: float = 1e-3,
                   seed: int = 0) -> float:
    """Held-out accuracy of a standardised L2 logistic regression (inverse strength ``c``) fitted on
    the other rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
    probe.fit(features[~held_out], labels[~held_out])
    return float(probe.score(features[held_out], labels[held_out]))


def probe_layers(model, tokenizer, statements: Statements, batch_size: int = 32, precision: str = "fp32",
                 c: float = 1e-3, seed: int = 0) -> list[dict]:
    """Per layer: ``accuracy``, ``control_accuracy`` and ``selectivity`` on held-out entities."""
    states = last_token_states(model, tokenizer, statements.texts, batch_size, precision)
    rows = []
    for layer, features in enumerate(tqdm(states, desc="probes", unit="layer", leave=False)):
        accuracy = probe_accuracy(features, statements.labels, statements.held_out, c, seed)
        control = probe_accuracy(features, statements.control_labels, statements.held_out, c, seed)
        rows.append({"layer": layer, "accuracy": accuracy, "control_accuracy": control,
                     "selectivity": accuracy - control})
    return rows
