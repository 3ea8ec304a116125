"""Overflows the C stack: compares two very deeply nested lists with no recursion limit.

expect: crashed, memory, failed
"""
import sys

sys.setrecursionlimit(10**9)
left, right = [], []
for _ in range(300_000):
    left, right = [left], [right]
left == right
