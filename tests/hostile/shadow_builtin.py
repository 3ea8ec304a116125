"""Defines a global named like a builtin that the tests call.

expect: failed
tests: assert abs(solution() - 42) < 1e-9
"""


def abs(value):
    return 0


def solution():
    return 41
