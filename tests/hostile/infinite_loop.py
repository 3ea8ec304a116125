"""Spins forever inside the function under test.

expect: timeout
"""


def solution():
    while True:
        pass
