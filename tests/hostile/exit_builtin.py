"""Calls the exit() builtin with status 0 after defining a wrong solution.

expect: failed
"""


def solution():
    return 41


exit(0)
