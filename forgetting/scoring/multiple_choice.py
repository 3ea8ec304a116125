"""Multiple-choice accuracy by the summed log-likelihood of each choice given the prompt.

Follows lm-evaluation-harness's conventions so numbers are comparable: the context is encoded
without special tokens, trailing spaces move from the context to the continuation, ``acc`` takes
the argmax of the summed log-likelihood and ``acc_norm`` divides it by the length in characters of
the choice without the space that joins it to the context (lm-eval's ``acc_norm``: ``len`` of
``doc_to_choice``, the target delimiter not counted; lm-eval's ``acc_bytes`` is the byte count).

Written here rather than called from lm-eval because it is measurably faster on CPU
(benchmarks/bench_lm_eval.py): each question is one packed sequence, the shared context followed
by every choice, with a block attention mask and restarted positions so that each choice sees the
context and itself only. The context is computed once instead of once per choice, and only the
scored positions go through the output head.
"""
from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from forgetting.device import autocast, fp32_outputs, on_device


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    if not context_ids:
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        return [start], whole
    return context_ids, whole[len(context_ids):]


def pack_question(tokenizer, prompt: str, choices: list[str], max_context: int = 2048) -> dict:
    """One sequence: context then each choice minus its last token (which is only a target)."""
    continuations = [encode_pair(tokenizer, prompt, choice)[1] for choice in choices]
    context = encode_pair(tokenizer, prompt, choices[0])[0][-max_context:]
    tokens, positions, segments, scored = list(context), list(range(len(context))), [0] * len(context), []
    for segment, continuation in enumerate(continuations, start=1):
        start = len(tokens)
        body = continuation[:-1]
        tokens += body
        positions += range(len(context), len(context) + len(body))
        segments += [segment] * len(body)
        scored.append(([len(context) - 1] + list(range(start, start + len(body))), continuation))
    return {"tokens": tokens, "positions": positions, "segments": segments, "scored": scored}


def _block_mask(segments: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """(batch, 1, L, L) boolean on ``segments``' device: causal, and a choice attends to the context
    and its own tokens."""
    width, device = segments.shape[1], segments.device
    causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
    query, key = segments[:, :, None], segments[:, None, :]
    mask = causal & ((key == 0) | (key == query))
    valid = torch.arange(width, device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]
    mask &= valid[:, None, :] & valid[:, :, None]
    mask |= torch.eye(width, dtype=torch.bool, device=device)  # padding rows attend to themselves: no NaN
    return mask[:, None]


@torch.no_grad()
def question_logprobs(model, tokenizer, questions: list[tuple[str, list[str]]], batch_size: int = 16,
                      precision: str = "fp32") -> tuple[list[list[float]], int]:
    """Summed log-probability of every choice of every question; also the tokens processed."""
    packed = [pack_question(tokenizer, prompt, choices) for prompt, choices in questions]
    order = sorted(range(len(packed)), key=lambda i: -len(packed[i]["tokens"]))
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    scores, tokens = [None] * len(packed), 0
    with autocast(precision, model.device):  # one context for every batch: the weights are cast once
        for start in tqdm(range(0, len(order), batch_size), desc="log-likelihood", unit="batch", leave=False):
            tokens += _score_batch(model, tokenizer, decoder, head, softcap, precision,
                                   [packed[i] for i in order[start:start + batch_size]],
                                   order[start:start + batch_size], scores)
    return scores, tokens


def _score_batch(model, tokenizer, decoder, head, softcap, precision: str, batch: list[dict], indices: list[int],
                 scores) -> int:
    """Fill ``scores[i]`` for the batch's questions (``indices``); returns the tokens processed. The head
    runs with autocast off (``fp32_outputs``): the log-softmax over the whole vocabulary needs fp32 logits."""
    lengths = [len(item["tokens"]) for item in batch]
    width = max(lengths)
    ids = torch.full((len(batch), width), tokenizer.pad_token_id or 0, dtype=torch.long)
    positions = torch.zeros_like(ids)
    segments = torch.full_like(ids, -1)
    for row, item in enumerate(batch):
        ids[row, :lengths[row]] = torch.tensor(item["tokens"])
        positions[row, :lengths[row]] = torch.tensor(item["positions"])
        segments[row, :lengths[row]] = torch.tensor(item["segments"])
    # filled row by row on the CPU, then one copy each to the model's device
    ids, positions, segments = (on_device(t, model.device) for t in (ids, positions, segments))
    hidden = decoder(input_ids=ids, position_ids=positions,
                     attention_mask=_block_mask(segments, lengths)).last_hidden_state
    rows = [row for row, item in enumerate(batch) for predictors, _ in item["scored"] for _ in predictors]
    columns = [p for item in batch for predictors, _ in item["scored"] for p in predictors]
    targets = torch.tensor([t for item in batch for _, choice in item["scored"] for t in choice],
                           device=model.device)
    with fp32_outputs(precision, model.device):
        logits = head(hidden[rows, columns].float())  # one head call: it reads the whole vocabulary
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        token_scores = logits.log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1).tolist()
    cursor = 0
    for item, index in zip(batch, indices):
        scores[index] = []
        for _, choice in item["scored"]:
            scores[index].append(sum(token_scores[cursor:cursor + len(choice)]))
            cursor += len(choice)
    return sum(lengths)


def normalised_prediction(scores: list[float], choices: list[str]) -> int:
    """lm-eval's ``acc_norm`` choice: log-likelihood per character of the choice, its one leading
    target delimiter (the space joining it to the context) not counted."""
    lengths = [len(c[1:] if c.startswith(" ") else c) for c in choices]
    return max(range(len(scores)), key=lambda i: scores[i] / max(1, lengths[i]))


def score_multiple_choice(model, tokenizer, rows, batch_size: int = 16, precision: str = "fp32"):
    """Per-row predictions (``pred``, ``pred_norm``, ``correct``, ``correct_norm``) and tokens processed."""
    questions = [(row["prompt"], list(row["choices"])) for row in rows]
    all_scores, tokens = question_logprobs(model, tokenizer, questions, batch_size, precision)
    results = []
    for row, scores in zip(rows, all_scores):
        pred = max(range(len(scores)), key=scores.__getitem__)
        pred_norm = normalised_prediction(scores, row["choices"])
        results.append({"id": row["id"], "label": row["label"], "pred": pred, "pred_norm": pred_norm,
                        "correct": pred == row["label"], "correct_norm": pred_norm == row["label"],
                        "logprobs": [round(s, 4) for s in scores]})
    return results, tokens


def accuracy(results, key: str = "correct") -> float:
    return sum(r[key] for r in results) / len(results) if results else math.nan
