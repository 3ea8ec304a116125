"""What an attack is: one record holding all the ``attacks`` evaluation suite needs to know about it.

An attack is a function ``(model, tokenizer, behaviours, search, *, max_new_tokens, transfer, **_) ->
rows``, one judged row per behaviour (``forgetting.attacks.suite.judged_row``), registered in ``ATTACKS``
as an ``Attack`` naming that function, the function that builds its ``search`` config from an
``EvaluateConfig``, the budgets of that config it reads (counts, each checked to be at least 1; they must
be among the attacks suite's fields, which key its runs), and whether it finds one control for every
behaviour that ``transfer_from`` can score on another checkpoint. The suite reads the record and never
tests an attack's name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from forgetting.registry import load


@dataclass(frozen=True)
class Attack:
    runner: str                      # "module:function": the attack, run inside the suite's autocast
    search: str = ""                 # "module:function": EvaluateConfig -> the search config the runner takes
    fields: tuple[str, ...] = ()     # the EvaluateConfig budgets the search reads, each at least 1
    universal: bool = False          # one control for every behaviour: transfer_from scores it without searching

    @property
    def run(self) -> Callable[..., list[dict]]:
        return load(self.runner)

    def search_config(self, config) -> Any:
        """The search ``config`` asks for (``None`` for an attack that does not search)."""
        return load(self.search)(config) if self.search else None
