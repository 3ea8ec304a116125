"""Raises SystemExit(0), the way exit() and sys.exit(0) do.

expect: failed
"""
import sys


def solution():
    return 41


sys.exit(0)
