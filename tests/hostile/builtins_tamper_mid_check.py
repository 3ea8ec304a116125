"""Patches builtins from inside the function under test, after the check has started.

expect: failed
tests: solution()
tests: assert abs(solution() - 42) < 1e-9
"""


def solution():
    import builtins

    builtins.abs = lambda value: 0
    return 41
