"""Exits with status 0 from inside the function under test, mid-check.

expect: failed
"""
import os


def solution():
    os._exit(0)
