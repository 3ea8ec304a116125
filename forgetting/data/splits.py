"""Seeded, order-independent randomness: every draw is a hash of (purpose, seed, row id).

Hashing instead of ``random.Random`` keeps a row's fate independent of the order rows are
read in and of the Python version, so a split or a counterfactual target is a pure function
of the seed and the row's id.
"""
from __future__ import annotations

import hashlib
from typing import Sequence, TypeVar

T = TypeVar("T")


def unit(purpose: str, seed: int, key: str) -> float:
    """A stable pseudo-random number in [0, 1) for ``key`` under ``seed``."""
    digest = hashlib.blake2b(f"{purpose}\0{seed}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def seeded_order(rows: Sequence[dict], seed: int, purpose: str = "order") -> list[dict]:
    """Rows shuffled by the hash of their id: a prefix of the order is a seeded sample."""
    return sorted(rows, key=lambda row: unit(purpose, seed, row["id"]))


def partition(rows: Sequence[dict], seed: int, eval_fraction: float, salt: str = "") -> tuple[list[dict], list[dict]]:
    """Split rows into disjoint (train, eval), both in source order.

    Exactly ``round(len(rows) * eval_fraction)`` rows (at least one, when there are two or more)
    go to eval, so split sizes do not depend on the seed; which rows go is a function of the seed.
    """
    n_eval = round(len(rows) * eval_fraction)
    if len(rows) >= 2:
        n_eval = min(max(n_eval, 1), len(rows) - 1)
    held_out = {row["id"] for row in seeded_order(rows, seed, f"partition {salt}")[:n_eval]}
    train = [row for row in rows if row["id"] not in held_out]
    evaluation = [row for row in rows if row["id"] in held_out]
    return train, evaluation


def seeded_choice(options: Sequence[T], purpose: str, seed: int, key: str) -> T:
    return options[int(unit(purpose, seed, key) * len(options))]
