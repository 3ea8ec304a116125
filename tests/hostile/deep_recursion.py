"""Unbounded Python recursion after lifting the recursion limit.

expect: memory, crashed, failed, timeout
"""
import sys

sys.setrecursionlimit(10**9)


def down(n):
    return down(n + 1) + 1


def solution():
    return down(0)
