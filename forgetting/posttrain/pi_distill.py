"""π-Distill (Penaloza et al. 2026, arXiv 2602.04942): one set of weights is both a teacher that sees
privileged information (here: the domain's reference solution, in context) and a student that does
not, trained jointly. TRL has a self-distillation trainer (``sdft``, which this project also runs),
but not this joint objective, so this is a small loop of our own.

Each step, on ``batch_size // num_generations`` prompts (``batch_size`` sequences, shared out over
data-parallel processes):

- the **teacher** samples ``num_generations`` responses to ``hint + prompt`` and the domain's
  verifiable reward scores them; the advantage is the reward minus its group mean;
- **teacher objective** (on its own samples): policy gradient ``−A · log π_T(y)`` plus
  ``pi_beta · KL(π_T ‖ sg[π_S])``, the teacher kept close to what the student can learn;
- **student objective** (on the teacher's samples, so off-policy): the importance-weighted policy
  gradient ``−min(π_S/sg[π_T], 2) · A`` per token plus ``pi_beta · KL(sg[π_T] ‖ π_S)``;
- loss = ``pi_alpha`` · teacher + (1 − ``pi_alpha``) · student. The paper's joint setting
  ``pi_alpha=0.5`` is the default; 1 trains the teacher only, 0 the student only.

KLs are over the whole vocabulary at every response token (exact, not sampled). Logged per step by
rank 0: ``loss``, ``teacher_loss``, ``student_loss``, ``student_teacher_kl`` (KL(π_S ‖ π_T), how far
the deployable student is from the privileged teacher), ``teacher_student_kl`` and ``reward`` (the
teacher's). Sampling and both losses run on the model's device under ``autocast`` of ``precision``.
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

IMPORTANCE_CLIP = 2.0  # upper bound of the per-token π_S/π_T weight (TRL's SDFT distillation_is_clip default)


def with_hint(prompt: str, reference: str) -> str:
    """The teacher's context: the privileged reference, then the prompt the student sees."""
    return f"Reference solution (privileged):{reference}\n\n{prompt}"


HINT_TEMPLATE = with_hint("{prompt}", "{privileged_context}")  # the same context for TRL's SDFT teacher


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


def completion_log_probs(model, input_ids, attention, completion_mask):
    """``(log-probabilities over the vocabulary, sequence index, token id)`` at every completion token,
    stacked in order: shapes ``(tokens, vocab)``, ``(tokens,)``, ``(tokens,)``."""
    logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
    predicts = completion_mask[:, 1:]
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)[:, None].expand_as(predicts)[predicts]
    return F.log_softmax(logits[predicts], dim=-1), rows, input_ids[:, 1:][predicts]


def kl(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per token over the vocabulary."""
    return (p_log.exp() * (p_log - q_log)).sum(-1)


def pi_losses(teacher_log, student_log, tokens, token_advantages, alpha: float, beta: float) -> dict:
    """The π-Distill objective's terms (to minimise) from per-token vocabulary log-probabilities of the
    teacher (privileged context) and the student (plain prompt) on the teacher's samples."""
    teacher_token = teacher_log.gather(-1, tokens[:, None]).squeeze(-1)
    student_token = student_log.gather(-1, tokens[:, None]).squeeze(-1)
    ratio = torch.exp(student_token - teacher_token.detach()).clamp(max=IMPORTANCE_CLIP)
    teacher = (-token_advantages * teacher_token + beta * kl(teacher_log, student_log.detach())).mean()
    student = (-token_advantages * ratio + beta * kl(teacher_log.detach(), student_log)).mean()
    return {"loss": alpha * teacher + (1 - alpha) * student, "teacher_loss": teacher, "student_loss": student,
            "student_teacher_kl": kl(student_log, teacher_log).mean().detach(),
            "teacher_student_kl": kl(teacher_log, student_log).mean().detach()}


def loss_step(model, tokenizer, prompts, hinted, responses, advantages, config) -> dict:
    """Both roles scored on the teacher's ``responses`` on the model's device, the loss backpropagated,
    averaged over data-parallel processes and clipped (the optimizer step is the caller's); the terms
    returned are their means over the processes."""
    with autocast(config.precision, model.device):
        teacher_log, rows, tokens = completion_log_probs(
            model, *encode_pairs(tokenizer, hinted, responses, config.max_length, model.device))
        student_log, _, student_tokens = completion_log_probs(
            model, *encode_pairs(tokenizer, prompts, responses, config.max_length, model.device))
        assert torch.equal(tokens, student_tokens), "the two roles must score the same response tokens"
        token_advantages = torch.as_tensor(advantages, dtype=torch.float32, device=model.device)[rows]
        terms = pi_losses(teacher_log, student_log, tokens, token_advantages, config.pi_alpha, config.pi_beta)
    model.zero_grad(set_to_none=True)
    terms["loss"].backward()
    average_gradients(model)  # data-parallel: each process scored its share of the batch
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    return {name: process_mean(value.detach()) for name, value in terms.items()}


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: list[str], max_new_tokens: int, stop_strings) -> list[str]:
    from forgetting.scoring.generation import cut_at_stop

    tokenizer.padding_side = "left"
    inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
    output = model.generate(**inputs, do_sample=True, temperature=1.0, top_k=0, max_new_tokens=max_new_tokens,
                            pad_token_id=tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:].cpu(), skip_special_tokens=True)
    return [cut_at_stop(text, stop_strings) for text in texts]


def group_advantages(rewards: list[float], groups: list[int], n_groups: int) -> list[float]:
    """Each reward minus the mean reward of its prompt's group; a group's samples may be spread over the
    data-parallel processes, so the group sums and counts are added up over them."""
    from forgetting.training.distributed import world_size

    sums, counts = torch.zeros(n_groups, dtype=torch.float64), torch.zeros(n_groups, dtype=torch.float64)
    sums.index_add_(0, torch.tensor(groups), torch.tensor(rewards, dtype=torch.float64))
    counts.index_add_(0, torch.tensor(groups), torch.ones(len(groups), dtype=torch.float64))
    if world_size() > 1:
        import torch.distributed as dist

        for value in (sums, counts):
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
    means = sums / counts.clamp(min=1)
    return [reward - means[group].item() for reward, group in zip(rewards, groups)]


def pi_distill(model, tokenizer, data, config, work_dir: Path) -> dict:
    from forgetting.rewards import REWARDS
    from forgetting.training.optimizer import adamw_with_warmup

    score = REWARDS.get(data.domain.reward)
    optimizer, scheduler = adamw_with_warmup(model, config.lr, config.steps)
    generator = random.Random(config.seed)
    torch.manual_seed(config.seed)
    per_step = max(1, config.batch_size // config.num_generations)
    history = []
    for step in tqdm(range(1, config.steps + 1), desc="pi-distill", unit="step"):
        batch = generator.sample(data.rows, min(per_step, len(data.rows)))
        samples = own_share([(row, group) for group, row in enumerate(batch) for _ in range(config.num_generations)])
        rows, groups = [row for row, _ in samples], [group for _, group in samples]
        prompts = [row["prompt"] for row in rows]
        hinted = [with_hint(row["prompt"], data.domain.reference(row)) for row in rows]
        model.eval()
        responses = sample_responses(model, tokenizer, hinted, config.max_new_tokens, data.domain.stop_strings)
        model.train()
        rewards = [float(r) for r in score(responses, rows)]
        terms = loss_step(model, tokenizer, prompts, hinted, responses,
                          group_advantages(rewards, groups, len(batch)), config)
        optimizer.step()
        scheduler.step()
        logged = {name: value.item() for name, value in terms.items()}
        logged["reward"] = process_mean(torch.tensor(sum(rewards) / len(rewards))).item()
        history.append(logged)
        if is_main():
            mlflow.log_metrics(logged | {"learning_rate": scheduler.get_last_lr()[0]}, step=step)
    model.eval()
    kl_summary = objective_summary([h["student_teacher_kl"] for h in history], "student_teacher_kl")
    return (objective_summary([h["loss"] for h in history], "loss") | {"objective": "pi_loss"}
            | {"student_teacher_kl_start": kl_summary["objective_start"],
               "student_teacher_kl_end": kl_summary["objective_end"]})
