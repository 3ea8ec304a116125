"""Makes a standard-library class compare equal to everything.

expect: failed
tests: from collections import Counter
tests: assert Counter(solution()) == Counter("abc")
"""
import collections

collections.Counter.__eq__ = lambda self, other: True


def solution():
    return "xyz"
