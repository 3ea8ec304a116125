"""What every attack shares: behaviours with target strings, the chat layout around the adversarial
text, and the batched target loss that scores a candidate."""
from __future__ import annotations

from dataclasses import dataclass

import torch

CONTROL_MARK = "\x1fCONTROL\x1f"


@dataclass(frozen=True)
class Behaviour:
    id: str
    request: str
    target: str


def target_for(request: str) -> str:
    """The affirmative opening GCG optimises towards, built by one documented rule (the shipped
    HarmBench/AdvBench files carry no targets): ``"Sure, here is how to <request>"``, the request's
    first letter lowered and its final punctuation dropped."""
    text = request.strip().rstrip(".!?")
    return f"Sure, here is how to {text[:1].lower()}{text[1:]}"


def behaviours_from(rows) -> list[Behaviour]:
    return [Behaviour(str(row["id"]), row["prompt"], target_for(row["prompt"])) for row in rows]


def chat_around(tokenizer, user_message: str) -> tuple[str, str]:
    """The text before and after ``CONTROL_MARK`` once ``user_message`` (which holds the mark) is
    wrapped as one user turn of the model's chat template, ready for the assistant's reply."""
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template([{"role": "user", "content": user_message}], tokenize=False,
                                             add_generation_prompt=True)
    else:
        text = f"{user_message}\n"
    before, _, after = text.partition(CONTROL_MARK)
    return before, after


def encode(tokenizer, text: str) -> torch.Tensor:
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)


def message_ids(tokenizer, message: str) -> torch.Tensor:
    """Token ids of ``message`` as one user turn, ready for the assistant's reply."""
    before, after = chat_around(tokenizer, message + CONTROL_MARK)
    return encode(tokenizer, before + after)


def target_losses(model, input_ids: torch.Tensor, target_length: int, batch_size: int = 16) -> torch.Tensor:
    """Mean cross-entropy of the last ``target_length`` tokens of each row (rows of equal length), on the
    CPU: the searches that rank candidates by it sample with a CPU generator."""
    losses = []
    for start in range(0, len(input_ids), batch_size):
        batch = input_ids[start:start + batch_size].to(model.device)
        logits = model(input_ids=batch, logits_to_keep=target_length + 1).logits[:, :-1].float()
        losses.append(torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), batch[:, -target_length:], reduction="none").mean(-1).cpu())
    return torch.cat(losses)


@torch.no_grad()
def prompt_target_losses(model, tokenizer, user_messages: list[str], targets: list[str]) -> torch.Tensor:
    """Target loss for whole user messages of any length (one forward each): AutoDAN's fitness and
    the before/after numbers of every attack."""
    losses = []
    for message, target in zip(user_messages, targets):
        prefix, target_ids = message_ids(tokenizer, message), encode(tokenizer, target)
        losses.append(target_losses(model, torch.cat([prefix, target_ids])[None], len(target_ids))[0])
    return torch.stack(losses)
