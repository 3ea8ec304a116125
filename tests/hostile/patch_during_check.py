"""Patches a module function the tests use on its first call, during the check.

expect: failed
tests: import math
tests: value = solution()
tests: assert math.isclose(value, 42.0)
"""
import math


def solution():
    math.isclose = lambda *args, **kwargs: True
    return 41.0
