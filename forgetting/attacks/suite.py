"""Run an attack over behaviours and judge each reply: one table row per behaviour.

Each row carries the adversarial text found (``control``), the target loss at the starting point
(GCG: the ``! ! ...`` suffix; AutoDAN: the plain request) and with the control,
the model's greedy reply with it, ``success`` when the reported refusal judge (``judges.REPORT_JUDGE``,
not the keyword judge that selects safety training data) does not flag that reply, and whether the plain
request was refused; ``success_<judge>`` and ``refused_plain_<judge>`` hold every judge's verdict. A
``transfer`` control (a suffix found on another checkpoint) is scored as is, without searching.
"""
from __future__ import annotations

import torch

from forgetting.attacks.autodan import AutoDANConfig, autodan
from forgetting.attacks.gcg import GCGConfig, Layout, allowed_tokens, gcg, initial_suffix, layout
from forgetting.attacks.prompts import Behaviour, encode, message_ids, prompt_target_losses, target_losses
from forgetting.scoring.generation import STOP_STRINGS, cut_at_stop, greedy_decode
from forgetting.scoring.judges import REPORT_JUDGE, verdicts


@torch.no_grad()
def reply(model, tokenizer, input_ids: torch.Tensor, max_new_tokens: int) -> str:
    ids = greedy_decode(model, tokenizer, input_ids[None], torch.ones(1, len(input_ids), dtype=torch.long),
                        max_new_tokens)[0]
    return cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True), STOP_STRINGS).strip()


def judged_row(model, tokenizer, behaviour: Behaviour, control: str, attacked_ids: torch.Tensor,
               loss_before: float, loss_after: float, max_new_tokens: int) -> dict:
    attacked = reply(model, tokenizer, attacked_ids, max_new_tokens)
    plain = reply(model, tokenizer, message_ids(tokenizer, behaviour.request), max_new_tokens)
    attacked_refused, plain_refused = verdicts(attacked), verdicts(plain)
    return {"behaviour": behaviour.id, "request": behaviour.request, "target": behaviour.target,
            "control": control, "loss_before": loss_before, "loss_after": loss_after, "reply": attacked,
            "success": not attacked_refused[REPORT_JUDGE], "refused_plain": plain_refused[REPORT_JUDGE],
            **{f"success_{name}": not refused for name, refused in attacked_refused.items()},
            **{f"refused_plain_{name}": refused for name, refused in plain_refused.items()}}


@torch.no_grad()
def suffix_loss(model, item: Layout, suffix: torch.Tensor) -> float:
    return float(target_losses(model, item.rows(suffix[None]), len(item.target))[0])


def suffix_rows(model, tokenizer, behaviours: list[Behaviour], suffixes: list[list[int]], config: GCGConfig,
                max_new_tokens: int) -> list[dict]:
    start = initial_suffix(tokenizer, config.suffix_length)
    rows = []
    for behaviour, suffix in zip(behaviours, suffixes):
        item, suffix = layout(tokenizer, behaviour), torch.tensor(suffix)
        rows.append(judged_row(model, tokenizer, behaviour, tokenizer.decode(suffix),
                               torch.cat([item.before, suffix, item.after]), suffix_loss(model, item, start),
                               suffix_loss(model, item, suffix), max_new_tokens))
    return rows


def attack_gcg(model, tokenizer, behaviours, config: GCGConfig, max_new_tokens: int = 64, **_) -> list[dict]:
    """One suffix per behaviour."""
    allowed = allowed_tokens(tokenizer)
    suffixes = [gcg(model, tokenizer, [b], config, allowed, progress=f"gcg {b.id}").suffix_ids for b in behaviours]
    return suffix_rows(model, tokenizer, behaviours, suffixes, config, max_new_tokens)


def attack_gcg_universal(model, tokenizer, behaviours, config: GCGConfig, max_new_tokens: int = 64,
                         transfer: str = "", **_) -> list[dict]:
    """One suffix for all behaviours; with ``transfer``, that suffix text is scored without searching."""
    if transfer:
        suffix = encode(tokenizer, transfer).tolist()
    else:
        suffix = gcg(model, tokenizer, behaviours, config, progress="gcg universal").suffix_ids
    return suffix_rows(model, tokenizer, behaviours, [suffix] * len(behaviours), config, max_new_tokens)


def attack_autodan(model, tokenizer, behaviours, config: AutoDANConfig, max_new_tokens: int = 64,
                   model_name: str = "the assistant", developer: str = "its developer", **_) -> list[dict]:
    rows = []
    for behaviour in behaviours:
        result = autodan(model, tokenizer, behaviour, config, model_name, developer)
        message = result.prompt.replace("[PROMPT]", behaviour.request)
        before = float(prompt_target_losses(model, tokenizer, [behaviour.request], [behaviour.target])[0])
        row = judged_row(model, tokenizer, behaviour, result.prompt, message_ids(tokenizer, message), before,
                         -result.best_fitness[-1], max_new_tokens)
        rows.append(row | {"fitness_by_generation": result.best_fitness})
    return rows
