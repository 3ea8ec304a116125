"""π-Distill: one set of weights is both a teacher that sees privileged information (the reference
solution, in context) and a student that does not; no TRL trainer trains one model in two roles,
so this is a small loop of our own.

Each step, on a batch of prompts:

- teacher loss: cross-entropy of the reference completion given ``hint + prompt``;
- distillation: the student samples a response to the plain prompt, and the reverse KL
  ``KL(student(· | prompt, y<t) ‖ teacher(· | hint + prompt, y<t))`` over the vocabulary at every
  response token pulls the student towards what the teacher would say. The teacher side of the KL
  is detached: the student moves towards the teacher, not the teacher towards the student.

loss = teacher CE + ``kl_coef`` · reverse KL; both terms and the total are logged per step (by rank 0).
Sampling and both losses run on the model's device, under ``autocast`` of ``config.precision`` there.
"""
from __future__ import annotations

import random
from pathlib import Path

import mlflow
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from forgetting.device import autocast
from forgetting.posttrain.trl_methods import objective_summary
from forgetting.training.distributed import average_gradients, is_main, own_share, process_mean


def with_hint(prompt: str, reference: str) -> str:
    return f"Reference solution (privileged):{reference}\n\n{prompt}"


def encode_pairs(tokenizer, prompts: list[str], completions: list[str], max_length: int, device):
    """Right-padded ``prompt + completion`` ids with a mask over the completion tokens, on ``device``."""
    rows = []
    for prompt, completion in zip(prompts, completions):
        prompt_ids = tokenizer(prompt)["input_ids"]  # with BOS where the model has one
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = (prompt_ids + completion_ids)[-max_length:]
        rows.append((ids, min(len(completion_ids), len(ids))))
    length = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    completion_mask = torch.zeros_like(input_ids, dtype=torch.bool)
    for row, (ids, n_completion) in enumerate(rows):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        attention[row, :len(ids)] = 1
        completion_mask[row, len(ids) - n_completion:len(ids)] = True
    return input_ids.to(device), attention.to(device), completion_mask.to(device)


def completion_log_probs(model, input_ids, attention, completion_mask) -> torch.Tensor:
    """Log-probabilities over the vocabulary at the positions that predict completion tokens,
    stacked in order: shape ``(completion tokens in the batch, vocab)``."""
    logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
    return F.log_softmax(logits[completion_mask[:, 1:]], dim=-1)


def reverse_kl(model, tokenizer, prompts, hinted, responses, max_length: int) -> torch.Tensor:
    student = completion_log_probs(model, *encode_pairs(tokenizer, prompts, responses, max_length, model.device))
    with torch.no_grad():
        teacher = completion_log_probs(model, *encode_pairs(tokenizer, hinted, responses, max_length, model.device))
    return (student.exp() * (student - teacher)).sum(-1).mean()


def teacher_loss(model, tokenizer, hinted, references, max_length: int) -> torch.Tensor:
    input_ids, attention, mask = encode_pairs(tokenizer, hinted, references, max_length, model.device)
    labels = input_ids.masked_fill(~mask, -100)
    return model(input_ids=input_ids, attention_mask=attention, labels=labels).loss


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: list[str], max_new_tokens: int, stop_strings) -> list[str]:
    from forgetting.evaluation.generation import cut_at_stop

    tokenizer.padding_side = "left"
    inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
    output = model.generate(**inputs, do_sample=True, temperature=1.0, top_k=0, max_new_tokens=max_new_tokens,
                            pad_token_id=tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:].cpu(), skip_special_tokens=True)
    return [cut_at_stop(text, stop_strings) for text in texts]


def loss_step(model, tokenizer, prompts, hinted, references, responses, config):
    """Teacher CE, reverse KL and their weighted sum on the model's device, backpropagated, averaged
    over data-parallel processes and clipped (the optimizer step is the caller's); the terms returned
    are their means over the processes."""
    with autocast(config.precision, model.device):
        ce = teacher_loss(model, tokenizer, hinted, references, config.max_length)
        kl = reverse_kl(model, tokenizer, prompts, hinted, responses, config.max_length)
        loss = ce + config.kl_coef * kl
    model.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(model)  # data-parallel: each process scored its share of the batch
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    return process_mean(ce), process_mean(kl), process_mean(loss)


def pi_distill(model, tokenizer, data, config, work_dir: Path) -> dict:
    from forgetting.training.optimizer import adamw_with_warmup

    optimizer, scheduler = adamw_with_warmup(model, config.lr, config.steps)
    generator = random.Random(config.seed)
    torch.manual_seed(config.seed)
    losses = []
    for step in tqdm(range(1, config.steps + 1), desc="pi-distill", unit="step"):
        batch = own_share(generator.sample(data.rows, min(config.batch_size, len(data.rows))))
        prompts = [row["prompt"] for row in batch]
        references = [data.domain.reference(row) for row in batch]
        hinted = [with_hint(prompt, reference) for prompt, reference in zip(prompts, references)]
        model.eval()
        responses = sample_responses(model, tokenizer, prompts, config.max_new_tokens, data.domain.stop_strings)
        model.train()
        ce, kl, loss = loss_step(model, tokenizer, prompts, hinted, references, responses, config)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if is_main():
            mlflow.log_metrics({"loss": loss.item(), "teacher_ce": ce.item(), "reverse_kl": kl.item(),
                                "learning_rate": scheduler.get_last_lr()[0]}, step=step)
    model.eval()
    return objective_summary(losses, "loss") | {"objective": "pi_loss"}
