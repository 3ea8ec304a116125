"""Replaces modules in sys.modules so the tests import a fake.

expect: failed
tests: import math
tests: assert math.isclose(solution(), 42)
tests: import random
tests: assert random.choice([solution()]) == 42
"""
import sys
import types

fake = types.ModuleType("math")
fake.isclose = lambda *args, **kwargs: True
sys.modules["math"] = fake
fake_random = types.ModuleType("random")
fake_random.choice = lambda items: 42
sys.modules["random"] = fake_random


def solution():
    return 41
