"""Single-turn verifiable environments with GEM's interface (``reset`` → ``(observation, info)``,
``step(action)`` → ``(observation, reward, terminated, truncated, info)``).

GEM itself (``gem-llm``) is not a dependency: its code environment runs programs through its own
executor rather than our sandbox, and it pins nltk, math-verify and reasoning-gym. A prompt is one
episode: ``reset`` serves the next training row, ``step`` scores the response and terminates.
``VectorEnv`` steps a batch at once, so code rewards run in the sandbox pool in parallel.
"""
from __future__ import annotations

from forgetting.rewards.domains import get_domain

TERMINAL = ""


class DomainEnv:
    def __init__(self, domain: str, split: str = "train", seed: int = 0, limit: int | None = None):
        self.domain = get_domain(domain)
        self.rows = self.domain.rows(split, seed, limit)
        self.index, self.row = -1, None

    def __len__(self) -> int:
        return len(self.rows)

    def reset(self, seed: int | None = None) -> tuple[str, dict]:
        self.index = (self.index + 1) % len(self.rows)
        self.row = self.rows[self.index]
        return self.row["prompt"], {"id": self.row["id"], "domain": self.domain.name}

    def score(self, actions: list[str], rows: list[dict]) -> list[float]:
        from forgetting.rewards import REWARDS

        return REWARDS.get(self.domain.reward)(actions, rows)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        [reward] = self.score([action], [self.row])
        return TERMINAL, reward, True, False, {"id": self.row["id"], "domain": self.domain.name}


class VectorEnv:
    """``num_envs`` episodes stepped together (GEM's vector-env shape: lists in, lists out)."""

    def __init__(self, env: DomainEnv, num_envs: int):
        self.env, self.num_envs, self.rows = env, num_envs, []

    def reset(self) -> tuple[list[str], list[dict]]:
        observations, infos, self.rows = [], [], []
        for _ in range(self.num_envs):
            observation, info = self.env.reset()
            observations.append(observation)
            infos.append(info)
            self.rows.append(self.env.row)
        return observations, infos

    def step(self, actions: list[str]):
        rewards = self.env.score(actions, self.rows)
        infos = [{"id": row["id"], "domain": self.env.domain.name} for row in self.rows]
        n = len(actions)
        return [TERMINAL] * n, rewards, [True] * n, [False] * n, infos
