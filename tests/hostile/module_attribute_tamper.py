"""Patches attributes of real modules the tests use.

expect: failed
tests: import math, operator
tests: assert math.isclose(solution(), 42)
tests: assert operator.eq(solution(), 42)
"""
import math
import operator

math.isclose = lambda *args, **kwargs: True
operator.eq = lambda a, b: True


def solution():
    return 41
