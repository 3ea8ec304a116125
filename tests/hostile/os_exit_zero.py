"""Exits with status 0 before the tests can run.

expect: failed
"""
import os


def solution():
    return 41


os._exit(0)
